"""QuantMode → TFLiteConverter settings → `.tflite` bytes."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from edgekit.conversion.load import SourceModel
from edgekit.conversion.quiet import import_tensorflow, quiet_native_output
from edgekit.errors import ConversionError, InputError

QUANT_MODES = ("float32", "dynamic", "float16", "int8")


@contextlib.contextmanager
def saved_model_dir(source: SourceModel, verbose: bool = False) -> Iterator[Path]:
    """A SavedModel folder for the converter. Keras 3 models are exported quietly: the same bytes
    as `from_keras_model`, without its long "Saved artifact" printout."""
    if source.kind == "saved_model":
        yield source.path
        return
    with tempfile.TemporaryDirectory(prefix="edgekit-export-") as tmp:
        export_dir = Path(tmp) / "saved_model"
        with quiet_native_output(verbose):
            source.keras_model.export(str(export_dir), verbose=False)
        yield export_dir


def representative_dataset(samples: np.ndarray, on_sample: Callable[[], None] | None = None):
    def generate():
        for sample in samples:
            if on_sample:
                on_sample()
            yield [sample[None].astype(np.float32)]

    return generate


def convert_saved_model(
    export_dir: Path,
    mode: str,
    calibration: np.ndarray | None = None,
    verbose: bool = False,
    on_sample: Callable[[], None] | None = None,
) -> bytes:
    """Convert a SavedModel with the settings of one quantization mode."""
    if mode not in QUANT_MODES:
        raise InputError(f"unknown quantization mode {mode!r} (known: {', '.join(QUANT_MODES)})")
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(export_dir))
    if mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if calibration is None or len(calibration) == 0:
            raise InputError("int8 needs calibration data: pass --calibration (a folder of images, .npy or .npz)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration, on_sample)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with quiet_native_output(verbose) as captured:
        try:
            return bytes(converter.convert())
        except Exception as exc:
            error = exc
    log = " ".join((captured[0] if captured else "").split())[-300:]
    detail = " ".join(str(error).split())[:300]
    raise ConversionError(f"TFLite conversion to {mode} failed: {detail}{' | ' + log if log else ''}")
