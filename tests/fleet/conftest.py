"""A fleet of three emulated devices behind throwaway loopback sshd servers, and its Ansible inventory.

pi-a: arm64 with LiteRT, pi-b: arm64 with tflite-runtime, pi-c: armv7 with tflite-runtime. Each
device's python3 is an emulated ARM Python that does not import the checkout (tests/remote/devices.py),
named in the inventory as its `ansible_python_interpreter`; each server has its own key, known_hosts
and ssh_config (tests/remote/sshd.py), which the inventory hands to Ansible's ssh.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.remote.devices import device_python, require_arm
from tests.remote.sshd import Sshd, sshd_available

FLEET = {
    "pi-a": ("127.0.0.61", "arm64-litert"),
    "pi-b": ("127.0.0.62", "arm64-tflite-runtime"),
    "pi-c": ("127.0.0.63", "armv7-tflite-runtime"),
}
LIFETIME_S = 900  # every server stops by itself after this, whatever happens to the test run


def require_fleet_tools() -> None:
    missing = []
    if importlib.util.find_spec("ansible") is None:
        missing.append("ansible-core (the fleet extra)")
    if not sshd_available():
        missing.append("openssh-server")
    if missing:
        message = f"fleet tests need {', '.join(missing)}: run make install"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def write_inventory(path: Path, devices: dict[str, Sshd], pythons: dict[str, Path]) -> Path:
    """An INI inventory as a user would write one: a group, and per host how to reach it."""
    lines = ["[pis]"]
    for name, device in devices.items():
        lines.append(
            f"{name} ansible_host={device.address} ansible_python_interpreter={pythons[name]} "
            f"ansible_ssh_common_args='-F {device.ssh_config}'"
        )
    lines += ["", "[pis:vars]", "ansible_user=root", ""]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Three running devices and their inventory; every server stopped afterwards."""
    require_fleet_tools()
    for _, kind in FLEET.values():
        require_arm(kind)
    folder = tmp_path_factory.mktemp("fleet")
    pythons = {name: device_python(kind, folder) for name, (_, kind) in FLEET.items()}
    devices: dict[str, Sshd] = {}
    try:
        for name, (address, _) in FLEET.items():
            devices[name] = Sshd(address, name=name, lifetime_s=LIFETIME_S).start()
        inventory = write_inventory(folder / "inventory.ini", devices, pythons)
        yield {"devices": devices, "inventory": inventory, "pythons": pythons, "dir": folder}
    finally:
        for device in devices.values():
            device.stop()
