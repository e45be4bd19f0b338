"""What a device is: architecture, CPU, cores, memory, OS, Python and the TFLite runtimes it has.

Runs on the device (it ships in the payload): the standard library only, every probe allowed to fail.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

# ARM's "CPU part" numbers (implementer 0x41) as /proc/cpuinfo prints them on ARM Linux.
ARM_PARTS = {
    "0xc07": "cortex-a7",
    "0xc09": "cortex-a9",
    "0xc0f": "cortex-a15",
    "0xd03": "cortex-a53",
    "0xd04": "cortex-a35",
    "0xd05": "cortex-a55",
    "0xd07": "cortex-a57",
    "0xd08": "cortex-a72",
    "0xd09": "cortex-a73",
    "0xd0a": "cortex-a75",
    "0xd0b": "cortex-a76",
    "0xd0c": "neoverse-n1",
    "0xd0d": "cortex-a77",
    "0xd41": "cortex-a78",
    "0xd42": "cortex-a78ae",
    "0xd4b": "cortex-a78c",
    "0xd40": "neoverse-v1",
    "0xd49": "neoverse-n2",
    "0xd46": "cortex-a510",
    "0xd47": "cortex-a710",
    "0xd48": "cortex-x2",
    "0xd4d": "cortex-a715",
    "0xd80": "cortex-a520",
    "0xd81": "cortex-a720",
}
# (report name, import name, distribution): the runtimes edgekit can use, lightest first.
RUNTIMES = (
    ("ai-edge-litert", "ai_edge_litert", "ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime", "tflite-runtime"),
    ("tensorflow", "tensorflow", "tensorflow"),
)
EMULATED_ENV = "EDGEKIT_EMULATED"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def cpu_facts(cpuinfo: str) -> dict[str, Any]:
    """CPU model and features from /proc/cpuinfo (x86: "model name", "flags"; ARM: "CPU part", "Features")."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    part = fields.get("CPU part", "").lower()
    model = ARM_PARTS.get(part) if fields.get("CPU implementer", "").lower() == "0x41" else None
    emulated_cpu = os.environ.get("EDGEKIT_EMULATED_CPU")
    if emulated_cpu and os.environ.get(EMULATED_ENV, "") not in ("", "0"):
        model = emulated_cpu  # QEMU's CPU, whatever the faked /proc/cpuinfo says
    return {
        "cpu": model or fields.get("model name") or fields.get("Processor") or fields.get("cpu model") or "unknown",
        "cpu_features": (fields.get("Features") or fields.get("flags") or "").split(),
        "board": fields.get("Model") or _read("/proc/device-tree/model").strip("\x00\n ") or None,
    }


def memory_bytes() -> int | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def os_release() -> str:
    fields = {}
    for line in _read("/etc/os-release").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip().strip('"')
    return fields.get("PRETTY_NAME") or f"{platform.system()} {platform.release()}"


def package_version(distribution: str, module_name: str) -> str | None:
    """The installed version of a distribution, without importing it (imports can be slow or crash)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        return version(distribution)
    except PackageNotFoundError:
        pass
    if distribution == "tensorflow":
        try:
            return version("tensorflow-cpu")
        except PackageNotFoundError:
            pass
    import importlib.util

    return "unknown" if importlib.util.find_spec(module_name) is not None else None


def externally_managed() -> bool:
    """PEP 668: the system Python refuses `pip install` (Debian 12, Pi OS Bookworm, Ubuntu 23.04+)."""
    import sysconfig

    if sys.prefix != sys.base_prefix:  # a venv is never externally managed
        return False
    stdlib = sysconfig.get_paths().get("stdlib") or ""
    return os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


def libc_version() -> str | None:
    """`glibc 2.36` from the C library itself (platform.libc_ver() reads the whole python binary)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None


def device_facts(packages: bool = True) -> dict[str, Any]:
    """Everything `edgekit device info` shows, as plain data. `packages=False` skips the installed
    packages' versions (metadata scans cost a run time; its report names the runtime it used)."""
    uname = os.uname()
    facts: dict[str, Any] = {
        "arch": uname.machine,
        **cpu_facts(_read("/proc/cpuinfo")),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        "memory_bytes": memory_bytes(),
        "os": os_release(),
        "kernel": uname.release,
        "glibc": libc_version(),
        "python": platform.python_version(),
        "python_path": sys.executable,
        "venv": sys.prefix != sys.base_prefix,
        "emulated": os.environ.get(EMULATED_ENV, "") not in ("", "0"),
    }
    if packages:
        facts["externally_managed"] = externally_managed()
        facts["numpy"] = package_version("numpy", "numpy")
        facts["pillow"] = package_version("pillow", "PIL")
        facts["runtimes"] = {
            name: found
            for name, module_name, distribution in RUNTIMES
            if (found := package_version(distribution, module_name)) is not None
        }
    return facts
