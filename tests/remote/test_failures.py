"""Every way a remote run can fail gets one line naming the host and the cause, and exit 5 when the
device cannot be reached or used; nothing is left half-written on either side."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.remote.conftest import edgekit, on, require_sshd, start_device
from tests.remote.devices import device_python, require_arm
from tests.remote.sshd import Sshd, descendants, free_port

pytestmark = pytest.mark.arm


@pytest.fixture
def fresh(laptop, tmp_path):
    """The laptop's environment with a control folder of its own: no master connection to reuse."""
    control = tempfile.mkdtemp(prefix="ek-f-")
    os.chmod(control, 0o700)
    yield {**laptop, "EDGEKIT_SSH_CONTROL_DIR": control}
    shutil.rmtree(control, ignore_errors=True)


@pytest.fixture(scope="module")
def plain_device(tmp_path_factory):
    """A device with no python3 of its own in ~/bin (tests give it one with set_python)."""
    require_sshd()
    device = Sshd("127.0.0.6", name="plain-device").start()
    yield device
    device.stop()


def one_line(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def config_with(device: Sshd, folder: Path, **settings: str) -> Path:
    """A copy of the device's ssh_config with some settings replaced."""
    text = device.ssh_config.read_text()
    for key, value in settings.items():
        lines = [line for line in text.splitlines() if line.strip().split(" ")[0] != key]
        text = "\n".join([*lines, f"  {key} {value}"]) + "\n"
    path = folder / "ssh_config"
    path.write_text(text)
    return path


def test_unknown_host(arm_bundles, fresh, tmp_path):
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n is not permitted here")
    # In a network namespace of its own, the name lookup fails without a packet leaving the machine.
    empty = tmp_path / "ssh_config"
    empty.write_text("")
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "edgekit", "run", str(arm_bundles["rpi4"]),
         "--on", "no-such-device.invalid", "--ssh-config", str(empty)],
        capture_output=True, text=True, env={**os.environ, **fresh}, cwd=ROOT, timeout=120,
    )  # fmt: skip
    one_line(result, 5, "no-such-device.invalid: unknown host")


def test_connection_refused(arm_bundles, fresh, tmp_path):
    empty = tmp_path / "ssh_config"
    empty.write_text("")
    host = f"root@127.0.0.5:{free_port('127.0.0.5')}"
    result = edgekit("run", arm_bundles["rpi4"], "--on", host, "--ssh-config", empty, env=fresh, timeout=120)
    one_line(result, 5, f"{host}: connection refused")


def test_authentication_failure(plain_device, arm_bundles, fresh, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    config = config_with(plain_device, tmp_path, IdentityFile=str(stranger))
    result = edgekit("run", arm_bundles["rpi4"], "--on", plain_device.name, "--ssh-config", config, env=fresh)
    one_line(result, 5, f"{plain_device.name}: authentication failed")


def test_host_key_mismatch(plain_device, arm_bundles, fresh, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    key = other.with_suffix(".pub").read_text().split()[:2]
    known.write_text(f"[{plain_device.address}]:{plain_device.port} {' '.join(key)}\n")
    config = config_with(plain_device, tmp_path, UserKnownHostsFile=str(known))
    result = edgekit("run", arm_bundles["rpi4"], "--on", plain_device.name, "--ssh-config", config, env=fresh)
    one_line(result, 5, f"{plain_device.name}: host key mismatch")
    assert known.read_text().count("\n") == 1  # edgekit changed nothing there


@pytest.mark.parametrize("strict", ["yes", "ask"])
def test_unknown_host_key_is_never_accepted(plain_device, arm_bundles, fresh, tmp_path, strict):
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = config_with(plain_device, tmp_path, UserKnownHostsFile=str(known), StrictHostKeyChecking=strict)
    result = edgekit("run", arm_bundles["rpi4"], "--on", plain_device.name, "--ssh-config", config, env=fresh)
    one_line(result, 5, f"{plain_device.name}: host key not known")
    assert known.read_text() == ""


def test_no_python(plain_device, arm_bundles, fresh):
    result = edgekit(
        "run", arm_bundles["rpi4"], *on(plain_device), "--remote-python", "/opt/nowhere/bin/python3", env=fresh
    )
    one_line(result, 5, f"{plain_device.name}: no Python on the device", "/opt/nowhere/bin/python3")


@pytest.mark.parametrize(
    "kind, cause",
    [("armv7-no-runtime", "no TFLite runtime found"), ("arm64-bare", "numpy is not installed")],
)
def test_no_runtime(plain_device, arm_bundles, fresh, tmp_path, kind, cause):
    require_arm(kind)
    plain_device.set_python(device_python(kind, tmp_path))
    try:
        result = edgekit("run", arm_bundles["rpi4"], *on(plain_device), env=fresh)
    finally:
        plain_device.set_python(None)
    line = one_line(result, 5, f"{plain_device.name}: ", cause)
    assert "edgekit device setup" in line


def test_disk_full_on_the_device(plain_device, arm_bundles, fresh, tmp_path):
    require_arm("arm64-litert")
    cache = plain_device.home / ".cache"
    cache.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(cache)], capture_output=True).returncode:
        if os.environ.get("CI"):
            pytest.fail("cannot mount a small tmpfs to fill")
        pytest.skip("mounting a tmpfs is not permitted here")
    plain_device.set_python(device_python("arm64-litert", tmp_path))
    try:
        result = edgekit("run", arm_bundles["rpi4"], *on(plain_device), env=fresh)
        one_line(result, 5, f"{plain_device.name}: disk full on the device")
        left = sorted(p.name for p in (cache / "edgekit").iterdir()) if (cache / "edgekit").exists() else []
        assert left == [], left  # no partial payload, no half-unpacked agent
    finally:
        plain_device.set_python(None)
        subprocess.run(["umount", "-l", str(cache)], check=False)


# --- a run that is cut: the link drops, or the user presses Ctrl-C --------------------------------


@pytest.fixture(scope="module")
def long_runner(tmp_path_factory, arm_bundles, laptop):
    """A device of its own (its sessions get killed) that already has the agent and the bundle."""
    device = start_device("arm64-litert", tmp_path_factory, address="127.0.0.7")
    try:
        warm = edgekit("run", arm_bundles["rpi4"], "--repeat", "1", *on(device), env=laptop)
        assert warm.returncode == 0, warm.stderr
        yield device
    finally:
        device.stop()


def start_long_run(device: Sshd, bundle: Path, env: dict) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "run", str(bundle), "--warmup", "0", "--repeat", "1000000", *on(device)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}, cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    runs = device.home / ".cache" / "edgekit" / "runs"
    deadline = time.monotonic() + 120
    while not any(runs.glob("run-*")):  # the agent is running on the device
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run did not start: {process.communicate()}")
        time.sleep(0.2)
    time.sleep(2)  # well inside the timed loop
    return process


def device_clean(device: Sshd, seconds: float = 30) -> bool:
    """The per-run folder is removed and no agent process is left on the device."""
    runs = device.home / ".cache" / "edgekit" / "runs"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        agents = [pid for pid in descendants(device.process.pid) if "serve" in _cmdline(pid)]
        if not any(runs.glob("run-*")) and not agents:
            return True
        time.sleep(0.5)
    return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_connection_dropped_mid_run(long_runner, arm_bundles, fresh):
    process = start_long_run(long_runner, arm_bundles["rpi4"], fresh)
    long_runner.kill_sessions()
    stdout, stderr = process.communicate(timeout=60)
    one_line(subprocess.CompletedProcess([], process.returncode, stdout, stderr), 5, "the connection dropped")
    assert long_runner.name in stderr
    assert device_clean(long_runner)


def test_ctrl_c_mid_run(long_runner, arm_bundles, fresh):
    process = start_long_run(long_runner, arm_bundles["rpi4"], fresh)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stderr.strip() == "edgekit: interrupted", stderr
    assert device_clean(long_runner)
