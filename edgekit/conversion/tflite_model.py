"""A `.tflite` model in memory, run with the interpreter `edgekit run` uses on the device: what every
converted model is checked with, and how an existing `.tflite` is read."""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from edgekit.bundle import TensorSpec
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
        self.input = tensor_spec(self.interpreter.get_input_details()[0])
        self.output = tensor_spec(self.interpreter.get_output_details()[0])
        self._in = self.interpreter.get_input_details()[0]["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return tuple(tensor_spec(d) for d in self.interpreter.get_input_details())

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return tuple(tensor_spec(d) for d in self.interpreter.get_output_details())

    def each_output(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        """Float outputs for a float32 batch, one invoke (and one output) at a time: the model's batch is 1."""
        for sample in samples:
            self.interpreter.set_tensor(self._in, quantize(sample[None], self.input))
            self.interpreter.invoke()
            yield dequantize(self.interpreter.get_tensor(self._out), self.output)[0]

    def predict(self, samples: np.ndarray) -> np.ndarray:
        """Float outputs for a float32 batch, stacked."""
        return np.stack(list(self.each_output(samples)))

    def set_zeros(self) -> None:
        """Zeros as input (for timing), set once."""
        self.interpreter.set_tensor(self._in, quantize(np.zeros(self.input.shape, np.float32), self.input))


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
