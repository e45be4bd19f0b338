"""Combinations of packages that install cleanly and then fail at the first inference, refused with
one line that says what to install instead. Ships to devices (standard library and numpy only)."""

from __future__ import annotations


def numpy_version() -> str | None:
    """The numpy that imports (not the metadata's: a path can put another numpy first)."""
    try:
        import numpy
    except ImportError:
        return None
    return str(numpy.__version__)


def numpy_major() -> int | None:
    found = numpy_version()
    try:
        return int(found.split(".")[0]) if found else None
    except ValueError:
        return None


def check_runtime_numpy(preferred: str | None = None) -> None:
    """The check for the runtime a run would use (`preferred`, else the lightest installed)."""
    from edgekit.runtime.interpreter import check_numpy_for, find_runtime

    check_numpy_for(find_runtime(preferred))
