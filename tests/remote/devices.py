"""Emulated ARM Pythons that do NOT import the checkout: what a device's `python3` is in these tests.

The .arm/bin launchers (scripts/arm-sysroot.sh) put the repository first on the emulated Python's
path, so a device built on them would already import edgekit. These wrappers run the same Debian 12
ARM Python under QEMU with only the ARM site-packages (the runtimes, numpy, Pillow) on its path:
edgekit has to arrive over SSH, as on a real device.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARM = ROOT / ".arm"
# name -> (debian arch, uname -m, qemu, default CPU, site folders under .arm (relative), sysroot dist-packages?)
ARM64 = ("arm64", "aarch64", "qemu-aarch64-static", "cortex-a72")
ARMV7 = ("armhf", "armv7l", "qemu-arm-static", "cortex-a7")
DEVICES = {
    "arm64-litert": (*ARM64, ("site-arm64-litert",), False),
    "arm64-tflite-runtime": (*ARM64, ("site-arm64-tflite-runtime",), False),
    "armv7-tflite-runtime": (*ARMV7, ("site-armv7-tflite-runtime",), True),
    # Debian's numpy and Pillow, no TFLite runtime: a device that needs `edgekit device setup`.
    "armv7-no-runtime": (*ARMV7, (), True),
    # Debian 12's bare python3: no numpy at all.
    "arm64-bare": (*ARM64, (), False),
}
WRAPPER = """#!/bin/bash
# An emulated device python3 ({name}): Debian 12 {arch} under {qemu}, without the edgekit checkout.
sysroot={sysroot}
cpu=${{QEMU_CPU:-{cpu}}}
unset PYTHONHOME PYTHONSTARTUP PYTHONEXECUTABLE PYTHONUSERBASE PYTHONPATH
export QEMU_LD_PREFIX=$sysroot QEMU_CPU=$cpu
export EDGEKIT_EMULATED=1 EDGEKIT_EMULATED_CPU=$cpu EDGEKIT_EMULATED_ARCH={machine}
{pythonpath}export PYTHONNOUSERSITE=1 PYTHONPYCACHEPREFIX={pycache}
export PYTHONHOME=$sysroot/usr
exec {qemu} -L "$sysroot" -cpu "$cpu" -0 "$0" "$sysroot/usr/bin/python3.11" "$@"
"""


def arm_ready(name: str) -> bool:
    arch, _, _, _, sites, _ = DEVICES[name]
    return (ARM / f"sysroot-{arch}" / "usr/bin/python3.11").is_file() and all((ARM / s).is_dir() for s in sites)


def require_arm(name: str) -> None:
    if not arm_ready(name):
        message = f"{ARM} lacks {name}: run `make arm-env`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def device_python(name: str, folder: Path) -> Path:
    """Write the wrapper for device `name` into `folder` and return its path."""
    arch, machine, qemu, cpu, sites, dist_packages = DEVICES[name]
    sysroot = ARM / f"sysroot-{arch}"
    paths = [str(ARM / s) for s in sites]
    if dist_packages:
        paths.append(str(sysroot / "usr/lib/python3/dist-packages"))
    pythonpath = f"export PYTHONPATH={':'.join(paths)}\n" if paths else ""
    path = folder / f"python3-{name}"
    path.write_text(
        WRAPPER.format(
            name=name,
            arch=arch,
            qemu=qemu,
            cpu=cpu,
            machine=machine,
            sysroot=sysroot,
            pythonpath=pythonpath,
            pycache=ARM / "pycache",
        )
    )
    path.chmod(0o755)
    return path
