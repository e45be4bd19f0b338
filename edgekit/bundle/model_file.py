"""The model file inside a bundle: a TFLite flatbuffer, recognised by its header before any runtime
sees it (used by run, inspect, verify and convert alike)."""

from __future__ import annotations

import os

from edgekit.errors import InputError

TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier, bytes 4-8 of every .tflite


def check_tflite_header(head: bytes, where: str) -> None:
    """Refuse what cannot be a TFLite model before a runtime sees it: the runtimes' own messages for
    an empty or foreign file ("mmap of size 0 requested", "model_path must be specified") mislead."""
    if len(head) < 8:
        raise InputError(f"{where}: too small to be a TFLite model ({len(head)} bytes)")
    if head[4:8] != TFLITE_IDENTIFIER:
        raise InputError(f"{where}: not a TFLite model (no TFL3 identifier)")


def check_tflite_file(path: str | os.PathLike[str]) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    check_tflite_header(head, str(path))
