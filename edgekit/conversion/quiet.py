"""Silence TensorFlow's log noise (C++ logs, absl, the converter's prints) unless asked not to."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def quiet_native_output(verbose: bool = False) -> Iterator[list[str]]:
    """Redirect file descriptors 1 and 2 to a temporary file for the duration (TensorFlow writes to
    them from C++). Yields a list that receives the captured text, for error messages."""
    captured: list[str] = []
    if verbose:
        yield captured
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
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


def import_tensorflow():
    """Import TensorFlow quietly; a clear error when the convert extra is missing."""
    from edgekit.errors import InputError

    with quiet_native_output():
        try:
            import tensorflow as tf
        except ImportError:
            tf = None
    if tf is None:
        raise InputError("TensorFlow is not installed: pip install 'edgekit[convert]'")
    tf.get_logger().setLevel("ERROR")
    return tf


def import_keras():
    from edgekit.errors import InputError

    import_tensorflow()
    try:
        import keras
    except ImportError:
        raise InputError("Keras 3 is not installed: pip install 'edgekit[convert]'") from None
    return keras
