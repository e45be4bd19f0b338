"""Open a bundle, run inputs through it and time the invokes: the engine of `edgekit run`."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit import defaults
from edgekit.bundle import MANIFEST_NAME, MAX_THREADS, MODEL_NAME, Bundle, Manifest, Preprocess, TensorSpec, open_bundle
from edgekit.errors import InputError, UsageError
from edgekit.runtime import timing
from edgekit.runtime.interpreter import RuntimeInfo, delegate_applied, find_runtime, load_interpreter, tensor_spec
from edgekit.runtime.preprocess import collect_input_files, dequantize, load_input, quantize
from edgekit.runtime.process import machine_arch
from edgekit.runtime.stats import LatencyStats, within_budget

EMULATED_ENV = "EDGEKIT_EMULATED"


@dataclass(frozen=True)
class TopK:
    index: int
    label: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "score": round(self.score, 6)}


@dataclass(frozen=True)
class OutputSummary:
    name: str
    shape: tuple[int, ...]
    dtype: str
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "values": [round(v, 6) for v in self.values],
        }


@dataclass(frozen=True)
class InputResult:
    """What the model said about one input."""

    input: str
    top_k: tuple[TopK, ...] | None = None
    outputs: tuple[OutputSummary, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"input": self.input}
        if self.top_k is not None:
            data["top_k"] = [t.to_dict() for t in self.top_k]
        if self.outputs is not None:
            data["outputs"] = [o.to_dict() for o in self.outputs]
        return data


@dataclass(frozen=True)
class RunReport:
    """The result of `edgekit run`: answers, latency and the budget verdict."""

    bundle: str
    name: str
    quantization: str
    target: str
    runtime: RuntimeInfo
    arch: str
    emulated: bool
    threads: int
    delegate_applied: bool | None
    load_ms: float
    latency_ms: LatencyStats
    end_to_end_ms: LatencyStats
    budget_ms: float
    within_budget: bool
    budget_enforced: bool
    warmup: int
    repeat: int
    results: tuple[InputResult, ...] = field(default_factory=tuple)

    @property
    def over_budget(self) -> bool:
        return self.budget_enforced and not self.within_budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "name": self.name,
            "quantization": self.quantization,
            "target": self.target,
            "runtime": self.runtime.name,
            "runtime_version": self.runtime.version,
            "arch": self.arch,
            "emulated": self.emulated,
            "threads": self.threads,
            "delegate_applied": self.delegate_applied,
            "load_ms": round(self.load_ms, 3),
            "warmup": self.warmup,
            "repeat": self.repeat,
            "latency_ms": self.latency_ms.to_dict(),
            "end_to_end_ms": self.end_to_end_ms.to_dict(),
            "budget_ms": self.budget_ms,
            "within_budget": self.within_budget,
            "budget_enforced": self.budget_enforced,
            "results": [r.to_dict() for r in self.results],
        }


def preprocess_shape(preprocess: Preprocess) -> tuple[int, ...]:
    """The input shape an image prepared by `preprocess` has (batch of one)."""
    height, width = preprocess.size
    if preprocess.layout == "NCHW":
        return (1, preprocess.channels, height, width)
    return (1, height, width, preprocess.channels)


def is_emulated() -> bool:
    """True under the QEMU launchers (they set $EDGEKIT_EMULATED): emulated milliseconds say nothing
    about the device, so the budget is reported but not enforced."""
    return os.environ.get(EMULATED_ENV, "") not in ("", "0")


class Session:
    """A loaded bundle with its interpreter, ready to predict."""

    def __init__(self, bundle: Bundle, threads: int | None = None, runtime: str | None = None):
        self.bundle = bundle
        self.manifest: Manifest = bundle.manifest
        self.threads = threads or self.manifest.threads
        if not 1 <= self.threads <= MAX_THREADS:
            raise UsageError(f"--threads must be from 1 to {MAX_THREADS}, got {self.threads}")
        self.runtime = find_runtime(runtime)
        start = time.perf_counter_ns()
        self.interpreter = load_interpreter(str(bundle.model_path), self.threads, self.runtime)
        self.load_ms = (time.perf_counter_ns() - start) / 1e6
        self._input_index = [d["index"] for d in self.interpreter.get_input_details()]
        self._output_index = [d["index"] for d in self.interpreter.get_output_details()]
        self._check_tensors()
        self.labels = bundle.labels()

    def _check_tensors(self) -> None:
        """The manifest must describe the model exactly: its shapes, dtypes and quantization are what
        inputs are prepared and outputs read with, so a wrong scale would give wrong answers silently."""
        where = f"{self.bundle.origin or self.bundle.path}/{MODEL_NAME}"
        for kind, details, specs in (
            ("input", self.interpreter.get_input_details(), self.manifest.inputs),
            ("output", self.interpreter.get_output_details(), self.manifest.outputs),
        ):
            if len(details) != len(specs):
                raise InputError(f"{where}: model has {len(details)} {kind}s, the manifest lists {len(specs)}")
            for detail, spec in zip(details, specs):
                actual = tensor_spec(detail)
                same_quantization = (actual.scale is None) == (spec.scale is None) and (
                    actual.scale is None
                    or (math.isclose(actual.scale, spec.scale, rel_tol=1e-6) and actual.zero_point == spec.zero_point)
                )
                if actual.shape != spec.shape or actual.dtype != spec.dtype or not same_quantization:
                    raise InputError(
                        f"{where}: {kind} {spec.name!r} does not match the manifest (model: {actual.dtype} "
                        f"{list(actual.shape)} scale {actual.scale} zero point {actual.zero_point})"
                    )
        if len(self.manifest.inputs) != 1:
            raise InputError(f"{where}: edgekit runs models with one input (this one has {len(self.manifest.inputs)})")
        preprocess = self.manifest.preprocess
        if preprocess is not None and preprocess_shape(preprocess) != self.manifest.inputs[0].shape:
            raise InputError(
                f"{self.bundle.origin or self.bundle.path}/{MANIFEST_NAME}: preprocess ({preprocess.layout} "
                f"{list(preprocess.size)} {preprocess.color}) does not fit the input shape "
                f"{list(self.manifest.inputs[0].shape)}"
            )

    @property
    def input_spec(self) -> TensorSpec:
        return self.manifest.inputs[0]

    def prepare(self, path: Path) -> np.ndarray:
        """Input file → the exact tensor the interpreter takes."""
        return quantize(load_input(path, self.input_spec, self.manifest.preprocess), self.input_spec)

    def zeros(self) -> np.ndarray:
        return quantize(np.zeros(self.input_spec.shape, dtype=np.float32), self.input_spec)

    def set_input(self, tensor: np.ndarray) -> None:
        self.interpreter.set_tensor(self._input_index[0], tensor)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def outputs(self) -> list[np.ndarray]:
        return [self.interpreter.get_tensor(i) for i in self._output_index]

    def predict(self, tensor: np.ndarray) -> list[np.ndarray]:
        """One inference on a prepared tensor; outputs dequantized to float32."""
        self.set_input(tensor)
        self.invoke()
        return [dequantize(y, spec) for y, spec in zip(self.outputs(), self.manifest.outputs)]

    def summarize(self, name: str, outputs: list[np.ndarray], top_k: int) -> InputResult:
        if self.manifest.task == "classify":
            scores = outputs[0].reshape(-1)
            k = max(1, min(top_k, scores.size))
            best = np.argsort(-scores, kind="stable")[:k]
            labels = self.labels
            return InputResult(
                name,
                top_k=tuple(
                    TopK(int(i), labels[i] if labels and i < len(labels) else None, float(scores[i])) for i in best
                ),
            )
        return InputResult(
            name,
            outputs=tuple(
                OutputSummary(spec.name, tuple(y.shape), spec.dtype, tuple(float(v) for v in y.reshape(-1)[:8]))
                for y, spec in zip(outputs, self.manifest.outputs)
            ),
        )


def run(
    bundle: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]] = (),
    threads: int | None = None,
    warmup: int = defaults.WARMUP,
    repeat: int = defaults.REPEAT,
    budget_ms: float | None = None,
    top_k: int = defaults.TOP_K,
    runtime: str | None = None,
    trusted_key: str | os.PathLike[str] | None = None,
) -> RunReport:
    """Run a bundle on input files (or zeros), time it, and judge the latency against the budget.
    With `trusted_key` (a NAME.pub) the bundle's signature is checked before anything is loaded."""
    if warmup < 0 or repeat < 1:
        raise UsageError("--warmup must be >= 0 and --repeat >= 1")
    if budget_ms is not None and not (0 < budget_ms < math.inf):
        raise UsageError(f"--budget-ms must be a positive number, got {budget_ms}")
    if isinstance(inputs, (str, os.PathLike)):  # one path, not a sequence of characters
        inputs = [inputs]
    with open_bundle(bundle, trusted_key=trusted_key) as opened:
        session = Session(opened, threads=threads, runtime=runtime)
        files = collect_input_files(inputs)
        names = [str(p) for p in files] or ["<zeros>"]
        first = session.prepare(files[0]) if files else session.zeros()

        # Invoke only: the input is set once, outside the timed region; the first invoke (slower:
        # XNNPACK packs weights lazily) and the warm-up are not counted.
        session.set_input(first)
        _, invoke_ns = timing.time_invokes(session.interpreter.invoke, warmup, repeat)

        # End to end: decode + preprocess + invoke + postprocess, every input at least once.
        results: list[InputResult | None] = [None] * len(names)
        e2e_ns = np.empty(max(repeat, len(names)), dtype=np.int64)
        clock = time.perf_counter_ns
        for i in range(e2e_ns.size):
            j = i % len(names)
            start = clock()
            tensor = session.prepare(files[j]) if files else session.zeros()
            outputs = session.predict(tensor)
            result = session.summarize(names[j], outputs, top_k)
            e2e_ns[i] = clock() - start
            if results[j] is None:
                results[j] = result

        latency = LatencyStats.from_ns(invoke_ns)
        budget = float(budget_ms) if budget_ms is not None else opened.manifest.budget_ms
        emulated = is_emulated()
        return RunReport(
            bundle=str(bundle),
            name=opened.manifest.name,
            quantization=opened.manifest.quantization,
            target=str(opened.manifest.target.get("name", "")),
            runtime=session.runtime,
            arch=machine_arch(),
            emulated=emulated,
            threads=session.threads,
            delegate_applied=delegate_applied(session.interpreter),
            load_ms=session.load_ms,
            latency_ms=latency,
            end_to_end_ms=LatencyStats.from_ns(e2e_ns),
            budget_ms=budget,
            within_budget=within_budget(latency, budget),
            budget_enforced=not emulated,
            warmup=warmup,
            repeat=repeat,
            results=tuple(r for r in results if r is not None),
        )
