"""QuantMode → TFLiteConverter settings → `.tflite` bytes: each mode converted once from one export,
however many targets share it."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from edgekit.bundle.files import temporary_folder
from edgekit.conversion.load import SourceModel
from edgekit.conversion.quiet import import_tensorflow, quiet_native_output
from edgekit.errors import ConversionError, InputError
from edgekit.targets import QUANT_MODES

# Modes whose activations are quantized: they need representative (calibration) inputs.
CALIBRATED_MODES = ("int8", "int16x8")
INT16X8_NOTE = (
    "int16x8 is for accuracy, not speed: LiteRT runs 16-bit activations on reference kernels "
    "(no XNNPACK), typically tens of times slower than int8"
)


@contextlib.contextmanager
def saved_model_dir(source: SourceModel, verbose: bool = False) -> Iterator[Path]:
    """A SavedModel folder for the converter. Keras 3 models are exported quietly: the same bytes
    as `from_keras_model`, without its long "Saved artifact" printout."""
    if source.kind == "saved_model":
        yield source.path
        return
    if source.saved_model_path is not None:  # ONNX: the SavedModel onnx2tf made
        yield source.saved_model_path
        return
    if source.keras_model is None:
        raise InputError(f"{source.path}: a {source.kind} model cannot be converted again")
    with temporary_folder("edgekit-export-") as tmp:
        export_dir = Path(tmp) / "saved_model"
        with quiet_native_output(verbose):
            if source.export_archive is not None:
                source.export_archive.write_out(str(export_dir), verbose=False)
            else:
                source.keras_model.export(str(export_dir), verbose=False)
        yield export_dir


Batch = Mapping[str, np.ndarray]  # calibration inputs keyed by the exported signature's input keys


def representative_dataset(samples: Batch, on_sample: Callable[[], None] | None = None):
    """One sample at a time, as a dict keyed by signature input: the converter matches inputs by key."""

    def generate():
        count = len(next(iter(samples.values())))
        for row in range(count):
            if on_sample:
                on_sample()
            yield {key: array[row : row + 1].astype(np.float32) for key, array in samples.items()}

    return generate


def make_converter(
    export_dir: Path,
    mode: str,
    calibration: Batch | None = None,
    on_sample: Callable[[], None] | None = None,
    float_outputs: bool = False,
) -> Any:
    """A TFLiteConverter set up for one quantization mode (also what the quantization debugger takes).
    `float_outputs`: int8 with float outputs, dequantized inside the model (for outputs kept float)."""
    if mode not in QUANT_MODES:
        raise InputError(f"unknown quantization mode {mode!r} (known: {', '.join(QUANT_MODES)})")
    if mode in CALIBRATED_MODES and (calibration is None or len(calibration) == 0):
        raise InputError(f"{mode} needs calibration data: pass --calibration (a folder of images, .npy or .npz)")
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(export_dir))
    if mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration, on_sample)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.float32 if float_outputs else tf.int8
    elif mode == "int16x8":
        # Float input and output: 16-bit integer I/O buys nothing on the device and would make every
        # caller quantize by hand; the graph inside runs 16-bit activations with 8-bit weights.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration, on_sample)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    return converter


def run_converter(convert: Callable[[], Any], mode: str, verbose: bool = False) -> Any:
    """Run a converter step quietly; its failures become one-line ConversionErrors with the log's tail."""
    with quiet_native_output(verbose) as captured:
        try:
            return convert()
        except Exception as exc:
            error = exc
    log = " ".join((captured[0] if captured else "").split())[-300:]
    detail = " ".join(str(error).split())[:300]
    raise ConversionError(f"TFLite conversion to {mode} failed: {detail}{' | ' + log if log else ''}")


def convert_saved_model(
    export_dir: Path,
    mode: str,
    calibration: Batch | None = None,
    verbose: bool = False,
    on_sample: Callable[[], None] | None = None,
    float_sizes: list[int] | None = None,
) -> bytes:
    """Convert a SavedModel with the settings of one quantization mode. For a calibrated mode,
    `float_sizes` receives the size of the float model the converter builds on its way."""
    converter = make_converter(export_dir, mode, calibration if mode in CALIBRATED_MODES else None, on_sample)
    if float_sizes is not None and mode in CALIBRATED_MODES:
        record_float_model_size(converter, float_sizes)
    return bytes(run_converter(converter.convert, mode, verbose))


def record_float_model_size(converter: Any, sizes: list[int]) -> None:
    """Make a calibrated conversion report the size of the float model it quantizes: byte for byte
    what a float32 conversion gives (less TFLite's metadata, a few hundred bytes), so the report's
    size against float32 costs no second conversion (9 of 25 s on MobileNetV2). TFLiteConverter has
    no public hook for it: this wraps the converter instance's own `_optimize_tflite_model`, and
    does nothing when a TensorFlow release lacks it (float32 is then converted for its size)."""
    optimize = getattr(converter, "_optimize_tflite_model", None)
    if optimize is None:
        return

    def recorded(model: Any, *args: Any, **kwargs: Any) -> Any:
        if not sizes:
            sizes.append(len(model))
        return optimize(model, *args, **kwargs)

    converter._optimize_tflite_model = recorded


@dataclass(frozen=True)
class Converted:
    """One mode's `.tflite` bytes, not yet verified."""

    mode: str
    content: bytes = field(repr=False)
    seconds: float


def convert_modes(
    export_dir: Path,
    modes: Sequence[str],
    calibration: Batch | None,
    verbose: bool = False,
    keep_going: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Converted], dict[str, str], int | None]:
    """Each mode converted once: (mode → conversion, mode → why it could not be converted, the size
    of the float32 model). Without `keep_going` the first failure raises; with it (--quantize auto)
    a failure is a reason."""
    converted: dict[str, Converted] = {}
    failures: dict[str, str] = {}
    float_sizes: list[int] = []
    for mode in modes:
        if mode in CALIBRATED_MODES and calibration is None:
            failures[mode] = f"{mode} needs --calibration data"
            continue
        start = time.perf_counter()
        try:
            content = convert_saved_model(export_dir, mode, calibration, verbose, float_sizes=float_sizes)
        except ConversionError as exc:
            if not keep_going:
                raise
            failures[mode] = str(exc)
        else:
            converted[mode] = Converted(mode, content, time.perf_counter() - start)
        if progress:
            progress(f"converted {mode}")
    if "float32" in converted:
        return converted, failures, len(converted["float32"].content)
    if not float_sizes and converted:
        with contextlib.suppress(ConversionError):
            float_sizes.append(len(convert_saved_model(export_dir, "float32", None, verbose)))
    return converted, failures, float_sizes[0] if float_sizes else None
