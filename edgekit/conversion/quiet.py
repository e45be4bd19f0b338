"""Keep TensorFlow's and Keras's noise off the terminal (C++ logs, absl, the converter's prints, Python
warnings) unless asked for it with --verbose."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator

from edgekit.native_output import quiet_native_output

__all__ = ["import_keras", "import_tensorflow", "quiet_native_output", "quiet_warnings"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def quiet_warnings(verbose: bool = False) -> Iterator[None]:
    """Python warnings raised meanwhile (Keras's "The structure of inputs doesn't match" for a legacy
    .h5, tf.lite's deprecation notices) are dropped, or shown as usual when `verbose`."""
    if verbose:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def import_tensorflow():
    """Import TensorFlow quietly; a clear error when the convert extra is missing."""
    from edgekit.errors import InputError

    with quiet_native_output(), quiet_warnings():
        try:
            import tensorflow as tf
        except ImportError:
            tf = None
    if tf is None:
        raise InputError("TensorFlow is not installed: pip install 'tensorflow-cpu==2.21.*' (the convert extra)")
    tf.get_logger().setLevel("ERROR")
    return tf


def import_keras():
    from edgekit.errors import InputError

    import_tensorflow()
    try:
        with quiet_warnings():
            import keras
    except ImportError:
        raise InputError("Keras 3 is not installed: install the convert extra (pip install 'keras>=3.10')") from None
    return keras
