"""Silence TensorFlow's log noise (C++ logs, absl, the converter's prints) unless asked not to."""

from __future__ import annotations

import os

from edgekit.native_output import quiet_native_output

__all__ = ["import_keras", "import_tensorflow", "quiet_native_output"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


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
