"""Compare a converted model with its source on the same inputs: how faithful is the conversion?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.bundle import TensorSpec
from edgekit.runtime.inspect_model import tensor_spec
from edgekit.runtime.interpreter import find_runtime
from edgekit.runtime.preprocess import dequantize, quantize


@dataclass(frozen=True)
class Fidelity:
    """Agreement of converted outputs with source outputs over `samples` inputs."""

    samples: int
    max_abs_error: float
    mean_abs_error: float
    cosine: float
    top1_agreement: float | None
    synthetic: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "max_abs_error": round(self.max_abs_error, 6),
            "mean_abs_error": round(self.mean_abs_error, 6),
            "cosine": round(self.cosine, 6),
            "top1_agreement": None if self.top1_agreement is None else round(self.top1_agreement, 4),
            "synthetic": self.synthetic,
        }


class TFLiteModel:
    """A `.tflite` model in memory, run with the same interpreter `edgekit run` uses."""

    def __init__(self, content: bytes, threads: int = 1):
        runtime = find_runtime()
        self.interpreter = runtime.interpreter_class(model_content=content, num_threads=threads)
        self.interpreter.allocate_tensors()
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

    def predict(self, samples: np.ndarray) -> np.ndarray:
        """Float outputs for a float32 batch, one invoke per sample (the model's batch is 1)."""
        results = []
        for sample in samples:
            self.interpreter.set_tensor(self._in, quantize(sample[None], self.input))
            self.interpreter.invoke()
            results.append(dequantize(self.interpreter.get_tensor(self._out), self.output)[0])
        return np.stack(results)


def compare_outputs(reference: np.ndarray, converted: np.ndarray, classifier: bool, synthetic: bool) -> Fidelity:
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    out = converted.reshape(len(converted), -1).astype(np.float64)
    error = np.abs(ref - out)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosine = np.where(norms > 0, (ref * out).sum(axis=1) / np.maximum(norms, 1e-30), 1.0)
    agreement = float((ref.argmax(axis=1) == out.argmax(axis=1)).mean()) if classifier else None
    return Fidelity(len(ref), float(error.max()), float(error.mean()), float(cosine.mean()), agreement, synthetic)
