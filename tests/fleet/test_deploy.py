"""`edgekit deploy` on the three-device fleet: first deploy, a second one, --rollback, and a deploy
interrupted on one device (the old bundle stays current there, the others switch)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.remote.sshd import descendants, signal_all

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ".local/share/edgekit/bundles"
NAME = "digits-int8"


def edgekit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def current(device, link: str = "current") -> str | None:
    path = device.home / BUNDLES / NAME / link
    return path.readlink().name if path.is_symlink() else None


@pytest.fixture(scope="module")
def versions(digits_bundles, tmp_path_factory) -> list[Path]:
    """Two versions of one bundle (same name; the second with another budget, so other bytes)."""
    first = digits_bundles["bundles"]["int8"]
    second = tmp_path_factory.mktemp("v2") / first.name
    shutil.copytree(first, second)
    manifest = json.loads((second / "edgekit.json").read_text())
    manifest["target"]["budget_ms"] = 123.0
    (second / "edgekit.json").write_text(json.dumps(manifest, indent=2))
    return [first, second]


def test_deploy_redeploy_and_rollback(fleet, versions):
    inventory = f"@{fleet['inventory']}"
    devices = fleet["devices"]

    first = edgekit("deploy", str(versions[0]), "--on", inventory, "--json")
    assert first.returncode == 0, first.stderr
    hosts = json.loads(first.stdout)
    assert [h["host"] for h in hosts] == list(devices)
    assert all(h["status"] == "ok" and h["name"] == NAME and h["previous"] is None for h in hosts), hosts
    v1 = hosts[0]["version"]
    assert all(current(device) == v1 for device in devices.values())
    bundle = devices["pi-c"].home / BUNDLES / NAME / "current"
    assert (bundle / "edgekit.json").is_file() and (bundle / "model.tflite").is_file()

    second = edgekit("deploy", str(versions[1]), "--on", inventory, "--json")
    assert second.returncode == 0, second.stderr
    v2 = json.loads(second.stdout)[0]["version"]
    assert v2 != v1
    assert all((current(d), current(d, "previous")) == (v2, v1) for d in devices.values())

    again = edgekit("deploy", str(versions[1]), "--on", inventory, "--json")  # same bundle: nothing changes
    assert again.returncode == 0, again.stderr
    assert not any(h["changed"] for h in json.loads(again.stdout))
    assert all((current(d), current(d, "previous")) == (v2, v1) for d in devices.values())

    back = edgekit("deploy", "--rollback", NAME, "--on", inventory, "--limit", "pi-a:pi-b")
    assert back.returncode == 0, back.stderr
    assert "pi-a" in back.stdout and "pi-c" not in back.stdout
    assert [current(d) for d in devices.values()] == [v1, v1, v2]
    assert current(devices["pi-a"], "previous") == v2


def test_a_deploy_cut_off_on_one_device_leaves_its_old_bundle_current(fleet, versions):
    """The device's agent is killed (power lost, link cut) while it installs: that device keeps what
    was current; the others switch; exit 5 (unreachable)."""
    inventory = f"@{fleet['inventory']}"
    devices = fleet["devices"]
    assert edgekit("deploy", str(versions[0]), "--on", inventory).returncode == 0
    old = {name: current(device) for name, device in devices.items()}
    victim = devices["pi-b"]
    killed = threading.Event()

    def cut_when_installing() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed.is_set():
            agents = [pid for pid in descendants(victim.process.pid) if _is_installing(_cmdline(pid))]
            if agents:
                signal_all(agents, signal.SIGSTOP)  # frozen at once, wherever it is, then the link is cut
                victim.kill_sessions()  # every session of that device; the server keeps listening
                signal_all(agents, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=cut_when_installing, daemon=True)
    watcher.start()
    cut = edgekit("deploy", str(versions[1]), "--on", inventory, "--json")
    watcher.join(timeout=5)
    assert killed.is_set(), "the deploy agent never ran on the device"
    hosts = {h["host"]: h for h in json.loads(cut.stdout)}
    assert cut.returncode == 5, cut.stderr
    assert hosts["pi-b"]["status"] in ("unreachable", "failed"), hosts["pi-b"]
    assert hosts["pi-a"]["status"] == hosts["pi-c"]["status"] == "ok"
    assert current(victim) == old["pi-b"]
    assert current(devices["pi-a"]) == current(devices["pi-c"]) == hosts["pi-a"]["version"] != old["pi-a"]
    assert (victim.home / BUNDLES / NAME / "current" / "edgekit.json").is_file()

    retry = edgekit("deploy", str(versions[1]), "--on", inventory, "--limit", "pi-b", "--json")
    assert retry.returncode == 0, retry.stderr
    assert current(victim) == hosts["pi-a"]["version"]
    assert not list((victim.home / BUNDLES).glob(".staging-*"))


def test_deploy_to_one_device_by_its_ssh_name(fleet, versions):
    """`--on HOST` (no inventory): the user's OpenSSH settings (here --ssh-config) and --remote-python."""
    device = fleet["devices"]["pi-c"]
    args = ["--on", "pi-c", "--ssh-config", str(device.ssh_config), "--remote-python", str(fleet["pythons"]["pi-c"])]
    result = edgekit("deploy", str(versions[0]), *args, "--to", "apps/models", "--json")
    assert result.returncode == 0, result.stderr
    (host,) = json.loads(result.stdout)
    assert (host["host"], host["status"], host["name"]) == ("pi-c", "ok", NAME)
    assert (device.home / "apps/models" / NAME / "current" / "edgekit.json").is_file()
    assert edgekit("deploy", "--rollback", NAME, *args, "--to", "apps/models").returncode == 1  # nothing before it


def test_a_bundle_that_fails_its_checks_is_not_deployed(fleet, versions, tmp_path):
    broken = tmp_path / versions[0].name
    shutil.copytree(versions[0], broken)
    (broken / "labels.txt").write_text("tampered\n")
    result = edgekit("deploy", str(broken), "--on", f"@{fleet['inventory']}")  # refused before leaving the laptop
    assert result.returncode == 4, result.stderr
    assert "labels.txt" in result.stderr


def test_the_device_verifies_before_the_switch(fleet, versions, tmp_path):
    """pi-a's cached copy of the new version is tampered with: pi-a refuses it (check-failed, exit 4)
    and keeps its current bundle; the other devices switch."""
    from edgekit.fleet.shipping import bundle_archive, pack_reproducibly

    inventory = f"@{fleet['inventory']}"
    devices = fleet["devices"]
    assert edgekit("deploy", str(versions[0]), "--on", inventory).returncode == 0
    before = current(devices["pi-a"])
    cached_name = bundle_archive(versions[1], tmp_path).name
    tampered = tmp_path / "tampered" / versions[1].name
    shutil.copytree(versions[1], tampered)
    (tampered / "labels.txt").write_text("tampered\n")
    pack_reproducibly(tampered, devices["pi-a"].home / ".cache/edgekit" / cached_name)

    result = edgekit("deploy", str(versions[1]), "--on", inventory, "--json")
    assert result.returncode == 4, result.stderr
    hosts = {h["host"]: h for h in json.loads(result.stdout)}
    assert hosts["pi-a"]["status"] == "check-failed" and "labels.txt" in hosts["pi-a"]["error"]
    assert hosts["pi-b"]["status"] == hosts["pi-c"]["status"] == "ok"
    assert current(devices["pi-a"]) == before != current(devices["pi-b"])
    assert not list((devices["pi-a"].home / BUNDLES).glob(".staging-*"))


def _is_installing(cmdline: bytes) -> bool:
    """The device's Python running the deploy agent's install (not a shell command naming the file)."""
    return b"deploy-agent" in cmdline and b"\x00install\x00" in cmdline


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_an_unsigned_bundle_is_refused_with_trusted_key_before_anything_is_sent(versions, tmp_path):
    """--trusted-key: the laptop checks the signature first (exit 4), no inventory is even read."""
    from edgekit.signing import generate_keypair

    keys = generate_keypair(tmp_path / "release")
    result = edgekit("deploy", str(versions[0]), "--on", f"@{tmp_path / 'none.ini'}", "--trusted-key", keys.public_key)
    assert result.returncode == 4, result.stderr
    assert "none.ini" not in result.stderr
