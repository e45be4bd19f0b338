"""Capture what native code (TensorFlow, the TFLite runtimes) writes straight to file descriptors 1
and 2, which Python's own redirection cannot catch. Used by both halves; imports nothing heavy."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Iterator


def _sink() -> IO[bytes]:
    """An anonymous file to catch the output: in memory where Linux offers it (no temporary file on
    disk, and no `tempfile` import on every `edgekit run`), else a temporary file."""
    if hasattr(os, "memfd_create"):
        try:
            return open(os.memfd_create("edgekit-native-output"), "w+b")
        except OSError:
            pass
    import tempfile

    return tempfile.TemporaryFile(mode="w+b")


@contextlib.contextmanager
def quiet_native_output(verbose: bool = False) -> Iterator[list[str]]:
    """Redirect file descriptors 1 and 2 to an anonymous file for the duration (TensorFlow writes to
    them from C++). Yields a list that receives the captured text, for error messages."""
    captured: list[str] = []
    if verbose:
        yield captured
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with _sink() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))
