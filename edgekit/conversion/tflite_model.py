"""A `.tflite` model in memory, run with the interpreter `edgekit run` uses on the device: what every
converted model is checked with, and how an existing `.tflite` is read."""

from __future__ import annotations

import re
from typing import Iterator, Mapping, Sequence

import numpy as np

from edgekit.bundle.model_file import check_tflite_header
from edgekit.errors import ConversionError, EdgekitError, InputError
from edgekit.native_output import quiet_native_output
from edgekit.runtime.inspect_model import tensor_spec
from edgekit.runtime.interpreter import find_runtime
from edgekit.runtime.preprocess import dequantize, quantize

INT16_OVERFLOW = "no_integer_overflow_from_quantization"


class TFLiteModel:
    """A `.tflite` model in memory with its interpreter allocated."""

    def __init__(self, content: bytes, threads: int = 1, where: str | None = None, mode: str | None = None):
        check_tflite_header(content[:8], where or "converted model")
        runtime = find_runtime()
        try:
            with quiet_native_output():  # LiteRT announces its XNNPACK delegate on stderr
                self.interpreter = runtime.interpreter_class(model_content=content, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise load_error(exc, f"{runtime.name} {runtime.version}", where, mode) from None
        self._in = [d["index"] for d in self.interpreter.get_input_details()]
        self._out = [d["index"] for d in self.interpreter.get_output_details()]
        self.inputs = tuple(tensor_spec(d) for d in self.interpreter.get_input_details())
        self.outputs = tuple(tensor_spec(d) for d in self.interpreter.get_output_details())
        self.input, self.output = self.inputs[0], self.outputs[0]

    def tensor_names(self) -> tuple[list[str], list[str]]:
        """Input and output names in the interpreter's order: the signature's keys when the model has one
        signature (what its maker named them), else the tensor names (a MediaPipe model's)."""
        names_in = [t.name for t in self.inputs]
        names_out = [t.name for t in self.outputs]
        try:
            signatures = self.interpreter.get_signature_list()
            if len(signatures) != 1:
                return names_in, names_out
            runner = self.interpreter.get_signature_runner(next(iter(signatures)))
            by_index_in = {int(d["index"]): k for k, d in runner.get_input_details().items()}
            by_index_out = {int(d["index"]): k for k, d in runner.get_output_details().items()}
        except (ValueError, RuntimeError, AttributeError):
            return names_in, names_out
        names_in = [by_index_in.get(int(i), n) for i, n in zip(self._in, names_in)]
        names_out = [by_index_out.get(int(i), n) for i, n in zip(self._out, names_out)]
        if len(set(names_in)) < len(names_in) or len(set(names_out)) < len(names_out):
            return [t.name for t in self.inputs], [t.name for t in self.outputs]
        return names_in, names_out

    def run_one(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Float outputs (batch axis kept) for one sample: float32 arrays in the interpreter's input order."""
        for index, spec, array in zip(self._in, self.inputs, arrays):
            self.interpreter.set_tensor(index, quantize(np.asarray(array, np.float32), spec))
        self.interpreter.invoke()
        return [dequantize(self.interpreter.get_tensor(i), spec) for i, spec in zip(self._out, self.outputs)]

    def each_output(self, samples: Mapping[str, np.ndarray] | np.ndarray) -> Iterator[list[np.ndarray]]:
        """Float outputs for a float32 batch (one array per input, in the model's input order; a bare
        array for a one-input model), one invoke at a time: the model's batch is 1. Each item is the
        sample's outputs, in the model's output order, without the batch axis."""
        arrays = [samples] if isinstance(samples, np.ndarray) else list(samples.values())
        if len(arrays) != len(self.inputs):
            raise InputError(f"the model takes {len(self.inputs)} inputs, got {len(arrays)}")
        for row in range(len(arrays[0])):
            yield [out[0] for out in self.run_one([a[row : row + 1] for a in arrays])]

    def predict_batch(self, samples: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Float outputs for a float32 batch, one stacked array per output."""
        rows = list(self.each_output(samples))
        return [np.stack([r[k] for r in rows]) for k in range(len(self.outputs))]

    def predict(self, samples: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """The first output for a float32 batch, stacked (one-output callers)."""
        return self.predict_batch(samples)[0]

    def set_zeros(self) -> None:
        """Zeros as inputs (for timing), set once."""
        for index, spec in zip(self._in, self.inputs):
            self.interpreter.set_tensor(index, quantize(np.zeros(spec.shape, np.float32), spec))


def in_source_order(content: bytes, keys: tuple[Sequence[str], Sequence[str]] | None) -> bytes:
    """`content` with its subgraph's inputs and outputs listed in the source model's order.

    TFLiteConverter does not keep a signature's order (nor sort it by key): a Keras model's heads
    can come out in either order. `keys` are the exported signature's input and output keys in source
    order; the model's signature maps each key to its tensor, and the subgraph's lists are rewritten
    in that order (the signature refers to tensors, not to positions, so it stays valid)."""
    if keys is None:
        return content
    model = TFLiteModel(content)
    signatures = model.interpreter.get_signature_list()
    if len(signatures) != 1:
        return content
    runner = model.interpreter.get_signature_runner(next(iter(signatures)))
    by_key_in = {k: int(d["index"]) for k, d in runner.get_input_details().items()}
    by_key_out = {k: int(d["index"]) for k, d in runner.get_output_details().items()}
    if not (set(keys[0]) <= set(by_key_in) and set(keys[1]) <= set(by_key_out)):
        return content
    wanted_in = [by_key_in[k] for k in keys[0]]
    wanted_out = [by_key_out[k] for k in keys[1]]
    if wanted_in == [int(i) for i in model._in] and wanted_out == [int(i) for i in model._out]:
        return content
    from tensorflow.lite.tools import flatbuffer_utils  # the laptop half only: a device never reorders

    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = flat.subgraphs[0]
    if sorted(wanted_in) != sorted(int(i) for i in graph.inputs) or sorted(wanted_out) != sorted(
        int(i) for i in graph.outputs
    ):
        return content
    graph.inputs = np.array(wanted_in, dtype=np.int32)
    graph.outputs = np.array(wanted_out, dtype=np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


def load_error(exc: BaseException, runtime: str, where: str | None, mode: str | None) -> EdgekitError:
    """The interpreter's refusal as one line; int16x8's overflow refusal explained, not just quoted."""
    message = " ".join(str(exc).split())
    node = re.search(r"Node number (\d+) \((\w+)\)", message)
    at = f" at node {node.group(1)} ({node.group(2)})" if node else ""
    if INT16_OVERFLOW in message:
        return ConversionError(
            f"{mode or 'the model'}: {runtime} refuses the converted model when allocating it{at}: an activation "
            f"range is so close to zero that its quantization overflows ({INT16_OVERFLOW}). The model has vanishing "
            "activations (dead or untrained layers); use int8 or float16 for it"
        )
    if where is not None:
        return InputError(f"{where}: {runtime} cannot load this model: {message[:300]}")
    return ConversionError(f"{mode or 'converted'} model: {runtime} cannot load it: {message[:300]}")
