"""Combinations of packages that install cleanly and then fail at the first inference, refused with
one line that says what to install instead. Ships to devices (standard library and numpy only)."""

from __future__ import annotations

from edgekit.errors import RuntimeNotFound


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
    """tflite-runtime (2.14 and older) is built against numpy 1.x: with numpy 2 pip installs it happily
    and its first call fails with "SystemError ... CreateWrapperFromFile". Refuse that pair up front."""
    from edgekit.runtime.interpreter import find_runtime

    runtime = find_runtime(preferred)
    major = numpy_major()
    if runtime.name == "tflite-runtime" and major is not None and major >= 2:
        raise RuntimeNotFound(
            f"tflite-runtime {runtime.version} cannot run with numpy {numpy_version()} (it was built for numpy 1.x): "
            "pip install 'numpy<2' in the same environment (on 32-bit Pi OS: apt install python3-numpy)"
        )
