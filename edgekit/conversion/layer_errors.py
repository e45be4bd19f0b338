"""Layer-by-layer int8 quantization error, measured with TFLite's QuantizationDebugger, and int8 models
with chosen layers kept in float.

TFLite's QuantizationDebugger (`tf.lite.experimental.QuantizationDebugger`) calibrates the model once and
builds a debug model in which every quantized op runs next to its float twin, fed the same (quantized)
inputs, joined by a NumericVerify op. So the difference at each op is the error that op's quantization
*adds*, not the error accumulated upstream. The same calibrated model then yields int8 models with
chosen ops left in float (`denylisted_nodes`), without calibrating again.

Keeping a layer in float keeps its *output* in float: the error the debugger charges to an op includes
quantizing its output tensor, so the ops that read that tensor run in float too (through any op that
merely passes the tensor's quantization on, like pooling or a reshape). Without that, a float layer
hands its output to a quantized reader, which quantizes it with the same ruinous range.

The ranking metric is the per-channel error: for every output channel, RMS quantization error over RMS
value, capped at 1 (a channel quantized to nothing), averaged over channels. TFLite's usual
`rmse / scale` cannot see the classic failure, a tensor whose few outlier channels stretch the
quantization range until every ordinary channel rounds to zero: its error is a textbook 0.29 steps,
but the steps are huge. A whole-tensor relative error misses it too (the outliers dominate the norm).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit import defaults
from edgekit.conversion.inputs import batch_size, evenly_spaced, take
from edgekit.conversion.quantize import make_converter, run_converter
from edgekit.conversion.quiet import import_tensorflow, quiet_native_output
from edgekit.errors import InputError
from edgekit.runtime.interpreter import ops_details

DEBUG_SAMPLES = 50  # inputs the layer statistics are averaged over
_VERIFY_OP = "NumericVerify"


@dataclass(frozen=True)
class LayerError:
    """How much error quantizing one op adds, measured on the debug samples."""

    layer: str  # the Keras layer it comes from ("" when the graph does not say)
    op: str  # TFLite operator, e.g. CONV_2D
    tensor: str  # the op's output tensor in the TFLite graph: what --keep-float names underneath
    channel_error: float  # mean over channels of min(1, RMS error / RMS value)
    rmse: float
    rmse_over_scale: float  # TFLite's metric: ~0.29 is ideal rounding error
    max_abs_error: float
    scale: float
    value_range: float  # what the int8 grid spans: 255 * scale
    readers: tuple[str, ...] = ()  # tensors of the ops that read this op's output (they stay float with it)

    @property
    def name(self) -> str:
        return self.layer or self.tensor

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "op": self.op,
            "tensor": self.tensor,
            "channel_error": round(self.channel_error, 5),
            "rmse": float(f"{self.rmse:.6g}"),
            "rmse_over_scale": round(self.rmse_over_scale, 4),
            "max_abs_error": float(f"{self.max_abs_error:.6g}"),
            "scale": float(f"{self.scale:.6g}"),
            "range": float(f"{self.value_range:.6g}"),
            "suspect": self.channel_error >= defaults.SUSPECT_ERROR,
            "readers": list(self.readers),
        }


class QuantizationDebug:
    """One int8 calibration of a model under TFLite's QuantizationDebugger: per-layer errors, and int8
    models with chosen layers kept in float."""

    def __init__(
        self,
        export_dir: Path,
        calibration: Mapping[str, np.ndarray],
        keras_model: Any = None,
        verbose: bool = False,
        float_outputs: bool = False,
    ):
        """`calibration` is keyed by the export's signature inputs; `float_outputs`: int8 models with
        float outputs (dequantized inside), for outputs kept in float."""
        tf = import_tensorflow()
        self._tf = tf
        self._verbose = verbose
        converter = make_converter(export_dir, "int8", calibration, float_outputs=float_outputs)

        def build() -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # it builds a tf.lite.Interpreter, which warns it is deprecated
                return tf.lite.experimental.QuantizationDebugger(converter=converter)

        self.debugger = run_converter(build, "int8 (quantization debugger)", verbose)
        self._layer_names = keras_layer_names(keras_model)
        self._float_outputs = float_outputs
        self._errors: list[LayerError] | None = None

    def layer_errors(self, samples: Mapping[str, np.ndarray]) -> list[LayerError]:
        """Per-op quantization error on `samples`, worst first."""
        if self._errors is None:
            self._errors = sorted(self._measure(samples), key=lambda e: e.channel_error, reverse=True)
        return self._errors

    def quantize(self, keep_float: Sequence[str] = ()) -> bytes:
        """An int8 model (int8 input and output) with the ops producing `keep_float` tensors left in float."""
        options = self._tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=list(keep_float) or None, fully_quantize=not self._float_outputs
        )

        def build() -> bytes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.debugger.options = options  # rebuilds the debug model and its (deprecated) interpreter
                return bytes(self.debugger.get_nondebug_quantized_model())

        return run_converter(build, "int8 with float layers", self._verbose)

    def output_tensors(self) -> tuple[str, ...]:
        """The names of the model's output tensors (model order), as `quantize` takes them: keeping one
        in float keeps the op that produces that output in float."""
        with warnings.catch_warnings(), quiet_native_output(self._verbose):
            warnings.simplefilter("ignore")
            interpreter = self._tf.lite.Interpreter(model_content=self.quantize(()))
        return tuple(str(d["name"]) for d in interpreter.get_output_details())

    def _measure(self, samples: Mapping[str, np.ndarray]) -> list[LayerError]:
        tf = self._tf
        with warnings.catch_warnings(), quiet_native_output(self._verbose):
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            # Preserve every tensor: the float twins' outputs are intermediate tensors the interpreter
            # would otherwise reuse (the debugger's own direct-compare path reads them without it).
            interpreter = tf.lite.Interpreter(
                model_content=self.debugger.quant_model,
                experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            interpreter.allocate_tensors()
        ops = ops_details(interpreter)
        tensors = {int(d["index"]): d for d in interpreter.get_tensor_details()}
        producer = {int(t): op for op in ops for t in op["outputs"]}
        verify_ops = [op for op in ops if op["op_name"] == _VERIFY_OP]
        if not verify_ops:
            raise InputError("the quantization debugger found no quantized layers in this model")
        stats = {int(op["index"]): _ChannelStats() for op in verify_ops}
        input_details = interpreter.get_input_details()  # the export's order: the source's
        arrays = list(samples.values())
        for row in range(len(arrays[0])):
            for detail, array in zip(input_details, arrays):
                x = array[row : row + 1]
                if np.dtype(detail["dtype"]) != np.float32:
                    scale, zero_point = detail["quantization"]
                    x = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(detail["dtype"])
                interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
            for op in verify_ops:
                quantized, reference = (int(i) for i in op["inputs"][:2])
                scale, zero_point = tensors[quantized]["quantization"]
                values = (interpreter.get_tensor(quantized).astype(np.float64) - zero_point) * scale
                stats[int(op["index"])].add(interpreter.get_tensor(reference).astype(np.float64), values)
        verified = {
            int(op["inputs"][0]): verified_tensor_name(str(tensors[int(op["outputs"][0])]["name"])) for op in verify_ops
        }
        errors = []
        for op in verify_ops:
            quantized = int(op["inputs"][0])
            scale = float(tensors[quantized]["quantization"][0])
            name = verified_tensor_name(str(tensors[int(op["outputs"][0])]["name"]))
            source_op = producer.get(quantized)
            s = stats[int(op["index"])]
            errors.append(
                LayerError(
                    layer=self._layer_of(name, source_op, tensors, producer),
                    op=str(source_op["op_name"]) if source_op else "",
                    tensor=name,
                    channel_error=s.channel_error(),
                    rmse=s.rmse(),
                    rmse_over_scale=s.rmse() / scale if scale else 0.0,
                    max_abs_error=s.max_abs,
                    scale=scale,
                    value_range=255.0 * scale,
                    readers=readers_of(quantized, ops, tensors, verified),
                )
            )
        return errors

    def _layer_of(self, tensor: str, op: Any, tensors: dict[int, Any], producer: dict[int, Any]) -> str:
        """The Keras layer an op belongs to; ops the graph names only by position (the final softmax)
        take the layer of the op that feeds them."""
        layer = layer_name(tensor, self._layer_names)
        hops = 0
        while not layer and op is not None and op["inputs"].size and hops < 3:
            upstream = int(op["inputs"][0])
            op = producer.get(upstream)
            layer = layer_name(str(tensors[upstream]["name"]), self._layer_names) if upstream in tensors else ""
            hops += 1
        return layer


def readers_of(tensor: int, ops: Sequence[Any], tensors: dict[int, Any], verified: dict[int, str]) -> tuple[str, ...]:
    """The quantized ops that read `tensor`, followed through ops that pass its quantization on unchanged
    (same scale and zero point: pooling, reshapes), as the tensor names `denylisted_nodes` takes."""
    found: list[str] = []
    frontier = [tensor]
    seen = {tensor}
    while frontier:
        current = frontier.pop()
        for op in ops:
            if current not in (int(i) for i in op["inputs"]):
                continue
            for out in (int(o) for o in op["outputs"]):
                if out not in verified or out in seen:
                    continue
                seen.add(out)
                found.append(verified[out])
                if tuple(tensors[out]["quantization"]) == tuple(tensors[current]["quantization"]):
                    frontier.append(out)
    return tuple(found)


class _ChannelStats:
    """Running sums per output channel (last axis) of squared error and squared value."""

    def __init__(self) -> None:
        self.error_sq: np.ndarray | None = None
        self.value_sq: np.ndarray | None = None
        self.count = 0
        self.max_abs = 0.0

    def add(self, reference: np.ndarray, quantized: np.ndarray) -> None:
        channels = reference.shape[-1] if reference.ndim else 1
        diff = (quantized - reference).reshape(-1, channels)
        ref = reference.reshape(-1, channels)
        if self.error_sq is None:
            self.error_sq = np.zeros(channels)
            self.value_sq = np.zeros(channels)
        self.error_sq += (diff**2).sum(axis=0)
        self.value_sq += (ref**2).sum(axis=0)
        self.count += diff.shape[0]
        self.max_abs = max(self.max_abs, float(np.abs(diff).max(initial=0.0)))

    def rmse(self) -> float:
        if self.error_sq is None or not self.count:
            return 0.0
        return float(np.sqrt(self.error_sq.sum() / (self.count * len(self.error_sq))))

    def channel_error(self) -> float:
        if self.error_sq is None or self.value_sq is None:
            return 0.0
        live = self.value_sq > 0  # channels that never carry a value (dead ReLUs) lose nothing
        if not live.any():
            return 0.0
        ratio = np.sqrt(self.error_sq[live] / self.value_sq[live])
        return float(np.minimum(ratio, 1.0).mean())


def debug_samples(x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """At most DEBUG_SAMPLES inputs spread over the verification set (which may be sorted by class)."""
    return take(x, evenly_spaced(batch_size(x), DEBUG_SAMPLES))


def verified_tensor_name(verify_output: str) -> str:
    """The name `denylisted_nodes` takes for the op a NumericVerify output checks: its output tensor name
    is `NumericVerify/<tensor>:<index>`, and the debug model appends one digit to `<tensor>` (the same
    rule as the debugger's own CSV dump)."""
    name = verify_output.rsplit(":", 1)[0]
    if name.startswith(_VERIFY_OP + "/"):
        name = name[len(_VERIFY_OP) + 1 :]
    return name[:-1] if name and name[-1].isdigit() else name


def keras_layer_names(model: Any) -> frozenset[str]:
    """Every layer name in a Keras model, nested models included (empty for a SavedModel)."""
    names: set[str] = set()
    stack = list(getattr(model, "layers", None) or [])
    while stack:
        layer = stack.pop()
        names.add(layer.name)
        stack.extend(getattr(layer, "layers", None) or [])
    return frozenset(names)


def layer_name(tensor: str, known: frozenset[str]) -> str:
    """The layer in a TFLite tensor name like `model_1/conv2_1/Relu;model_1/conv2_1/BiasAdd`: the export
    scopes each layer as `<name>_<n>`. Without Keras layer names to match, the scope before the op."""
    for part in tensor.split(";"):
        segments = part.split("/")
        for segment in segments[1:] if len(segments) > 1 else segments:
            if segment in known:
                return segment
            base = re.sub(r"_\d+$", "", segment)
            if base in known:
                return base
    if not known:
        segments = tensor.split(";")[0].split("/")
        if len(segments) >= 3:
            return re.sub(r"_\d+$", "", segments[-2])
    return ""
