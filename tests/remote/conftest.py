"""Fixtures for remote runs: loopback sshd "devices" whose python3 is an emulated ARM Python (one per
session and kind, stopped at the end), the digits bundles for rpi4 and rpi-armv7, and a laptop
environment of its own (payload cache, SSH control sockets) for every edgekit the tests start."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.remote.devices import device_python, require_arm
from tests.remote.sshd import Sshd, sshd_available

ADDRESSES = {"arm64-litert": "127.0.0.2", "armv7-tflite-runtime": "127.0.0.3"}


def require_sshd() -> None:
    if not sshd_available():
        message = "openssh-server/openssh-client missing: run `make install-ssh`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def laptop(tmp_path_factory) -> dict[str, str]:
    """Environment for the edgekit processes the tests start: their own cache and control sockets
    (a short path: sockets have a ~100-byte limit)."""
    control = tempfile.mkdtemp(prefix="ek-ssh-")
    os.chmod(control, 0o700)
    env = {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("laptop-cache")), "EDGEKIT_SSH_CONTROL_DIR": control}
    yield env
    for socket in Path(control).iterdir():  # end the masters now rather than after ControlPersist
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"], capture_output=True, timeout=10)
    subprocess.run(["rm", "-rf", control], check=False)


def start_device(kind: str, tmp_path_factory, address: str | None = None) -> Sshd:
    require_sshd()
    require_arm(kind)
    python = device_python(kind, tmp_path_factory.mktemp(f"python-{kind}"))
    return Sshd(address or ADDRESSES.get(kind, "127.0.0.4"), python=python, name=f"dev-{kind}").start()


@pytest.fixture(scope="session")
def arm64_device(tmp_path_factory):
    device = start_device("arm64-litert", tmp_path_factory)
    yield device
    device.stop()


@pytest.fixture(scope="session")
def armv7_device(tmp_path_factory):
    device = start_device("armv7-tflite-runtime", tmp_path_factory)
    yield device
    device.stop()


@pytest.fixture(scope="session")
def arm_bundles(digits, tmp_path_factory) -> dict[str, Path]:
    """digits int8 bundles for rpi4 and rpi-armv7 (one conversion), folders and .tar.gz archives."""
    from edgekit.conversion.pipeline import convert

    out = tmp_path_factory.mktemp("remote-bundles")
    report = convert(
        digits["model"],
        targets=["rpi4", "rpi-armv7"],
        quantization="int8",
        calibration=digits["calibration"],
        calibration_size=100,
        labels=digits["labels"],
        out=out,
        archive=True,
    )
    bundles = {Path(b.path).name: Path(b.path) for b in report.bundles}
    return {
        "rpi4": bundles["digits-rpi4"],
        "rpi-armv7": bundles["digits-rpi-armv7"],
        "rpi4-archive": out / "digits-rpi4.tar.gz",
        "images": digits["images"],
    }


def edgekit(*args, env: dict | None = None, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """The real `edgekit` command in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def on(device: Sshd) -> list[str]:
    return ["--on", device.name, "--ssh-config", str(device.ssh_config)]
