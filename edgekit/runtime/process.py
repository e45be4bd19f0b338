"""The machine and this process: its architecture, the CPUs the process may run on and its peak
resident memory."""

from __future__ import annotations

import os
import sys


def machine_arch() -> str:
    """`platform.machine()` without importing `platform` (milliseconds on every `edgekit run`)."""
    if hasattr(os, "uname"):
        return os.uname().machine
    import platform

    return platform.machine()


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def reset_peak_rss() -> bool:
    """Reset the process's peak-RSS mark (Linux: write 5 to /proc/self/clear_refs); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """The process's peak resident set size so far (since the last reset, where resets work)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024
