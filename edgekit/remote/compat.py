"""Combinations of packages that install cleanly and then fail at the first inference, refused with
one line that says what to install instead. Ships to devices (standard library and numpy only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.errors import RuntimeNotFound

if TYPE_CHECKING:
    from edgekit.runtime.interpreter import RuntimeInfo


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


def check_numpy_for(runtime: RuntimeInfo) -> None:
    """tflite-runtime (2.14 and older) is built against numpy 1.x: with numpy 2 pip installs it happily
    and its first call fails with "SystemError ... CreateWrapperFromFile". Refuse that pair up front."""
    major = numpy_major()
    if runtime.name == "tflite-runtime" and major is not None and major >= 2:
        raise RuntimeNotFound(
            f"tflite-runtime {runtime.version} cannot run with numpy {numpy_version()} (it was built for numpy 1.x): "
            "pip install 'numpy<2' in the same environment (on 32-bit Pi OS: apt install python3-numpy)"
        )


def check_runtime_numpy(preferred: str | None = None) -> None:
    """The check for the runtime a run would use (`preferred`, else the lightest installed)."""
    from edgekit.runtime.interpreter import find_runtime

    check_numpy_for(find_runtime(preferred))
