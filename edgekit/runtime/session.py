"""Open a bundle, run inputs through it and time the invokes: the engine of `edgekit run`."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit import defaults
from edgekit.bundle import MANIFEST_NAME, MAX_THREADS, MODEL_NAME, Bundle, Manifest, Preprocess, TensorSpec, open_bundle
from edgekit.errors import InputError, UsageError
from edgekit.runtime import timing
from edgekit.runtime.interpreter import RuntimeInfo, delegate_applied, find_runtime, load_interpreter, tensor_spec
from edgekit.runtime.outputs import InputResult, OutputSummary, PostProcess, TopK, unique_stems
from edgekit.runtime.preprocess import dequantize
from edgekit.runtime.process import machine_arch
from edgekit.runtime.samples import PreparedSample, Sample, collect_samples, prepare_sample, sample_stem, zeros_sample
from edgekit.runtime.stats import LatencyStats, within_budget

EMULATED_ENV = "EDGEKIT_EMULATED"
__all__ = ["InputResult", "OutputSummary", "RunReport", "Session", "TopK", "run"]  # result types: outputs.py


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
    """A loaded bundle with its interpreter, ready to predict. Inputs and outputs are in the manifest's
    order, which is the interpreter's (checked on load)."""

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
        for spec in self.manifest.inputs:
            preprocess = spec.preprocess
            if preprocess is not None and preprocess_shape(preprocess) != spec.shape:
                raise InputError(
                    f"{self.bundle.origin or self.bundle.path}/{MANIFEST_NAME}: input {spec.name!r}: preprocess "
                    f"({preprocess.layout} {list(preprocess.size)} {preprocess.color}) does not fit its shape "
                    f"{list(spec.shape)}"
                )

    @property
    def input_spec(self) -> TensorSpec:
        """The first input (the only one of a one-input model)."""
        return self.manifest.inputs[0]

    def load(self, sample: Sample, index: int = 0) -> PreparedSample:
        """A sample (path, or mapping input name → path or array) → tensors, with its source's size."""
        return prepare_sample(sample, self.manifest.inputs, index)

    def prepare_sample(self, sample: Sample) -> dict[str, np.ndarray]:
        """A sample → {input name: the exact tensor the interpreter takes}, in the manifest's order."""
        return self.load(sample).tensors

    def prepare(self, path: Path) -> np.ndarray:
        """An input file of a one-input model → the exact tensor the interpreter takes."""
        return self.prepare_sample(path)[self.input_spec.name]

    def zeros(self) -> np.ndarray:
        return zeros_sample(self.manifest.inputs).tensors[self.input_spec.name]

    def set_input(self, tensors: np.ndarray | Mapping[str, np.ndarray]) -> None:
        """Set every input: a mapping by input name, or the one tensor of a one-input model."""
        if not isinstance(tensors, Mapping):
            if len(self._input_index) != 1:
                raise InputError(f"this model has {len(self._input_index)} inputs: give one tensor per input name")
            tensors = {self.input_spec.name: tensors}
        for index, spec in zip(self._input_index, self.manifest.inputs):
            if spec.name not in tensors:
                names = ", ".join(s.name for s in self.manifest.inputs)
                raise InputError(f"no tensor for input {spec.name!r} (the model takes: {names})")
            self.interpreter.set_tensor(index, tensors[spec.name])

    def invoke(self) -> None:
        self.interpreter.invoke()

    def outputs(self) -> list[np.ndarray]:
        """The raw output tensors, in the manifest's order."""
        return [self.interpreter.get_tensor(i) for i in self._output_index]

    def predict(self, tensors: np.ndarray | Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One inference on prepared tensors; outputs dequantized to float32, in the manifest's order."""
        self.set_input(tensors)
        self.invoke()
        return [dequantize(y, spec) for y, spec in zip(self.outputs(), self.manifest.outputs)]

    def summarize(self, name: str, outputs: list[np.ndarray], top_k: int) -> InputResult:
        """The result `run` reports for outputs of a sample called `name` (no detection settings)."""
        post = PostProcess.of(self.bundle, top_k, defaults.CONF, defaults.IOU, defaults.MAX_DETECTIONS)
        return post.summarize(PreparedSample(name, Path(name).stem, {}), outputs)


def run(
    bundle: str | os.PathLike[str],
    inputs: Sequence[Sample] | Sample = (),
    threads: int | None = None,
    warmup: int = defaults.WARMUP,
    repeat: int = defaults.REPEAT,
    budget_ms: float | None = None,
    top_k: int = defaults.TOP_K,
    runtime: str | None = None,
    trusted_key: str | os.PathLike[str] | None = None,
    input_files: Mapping[str, Any] | None = None,
    save_outputs: str | os.PathLike[str] | None = None,
    conf: float = defaults.CONF,
    iou: float = defaults.IOU,
    max_detections: int = defaults.MAX_DETECTIONS,
) -> RunReport:
    """Run a bundle on samples (or zeros), time it, and judge the latency against the budget.

    A sample is an image or `.npy` (one-input models), a `.npz` keyed by input name, a folder of
    those, or a mapping {input name: path or array}; `input_files` is one more such mapping (the
    CLI's `--input NAME=PATH`). `save_outputs` (a folder) gets every output of every sample as
    float32 `.npy` (and for `detect`/`segment` the picture). With `trusted_key` (a NAME.pub) the
    bundle's signature is checked before anything is loaded."""
    if warmup < 0 or repeat < 1:
        raise UsageError("--warmup must be >= 0 and --repeat >= 1")
    if budget_ms is not None and not (0 < budget_ms < math.inf):
        raise UsageError(f"--budget-ms must be a positive number, got {budget_ms}")
    check_detection_settings(conf, iou, max_detections)
    if save_outputs is not None and Path(save_outputs).exists() and not Path(save_outputs).is_dir():
        raise InputError(f"{save_outputs}: --save-outputs needs a folder, this is a file")
    if isinstance(inputs, (str, os.PathLike, Mapping)):  # one sample, not a sequence of characters or keys
        inputs = [inputs]
    if input_files:
        inputs = [*inputs, dict(input_files)]
    with open_bundle(bundle, trusted_key=trusted_key) as opened:
        session = Session(opened, threads=threads, runtime=runtime)
        post = PostProcess.of(opened, top_k, conf, iou, max_detections)
        samples = collect_samples(inputs)
        first = session.load(samples[0], 0) if samples else zeros_sample(opened.manifest.inputs)
        stems = unique_stems([sample_stem(s, i) for i, s in enumerate(samples)] or ["zeros"])

        # Invoke only: the inputs are set once, outside the timed region; the first invoke (slower:
        # XNNPACK packs weights lazily) and the warm-up are not counted.
        session.set_input(first.tensors)
        _, invoke_ns = timing.time_invokes(session.interpreter.invoke, warmup, repeat)

        # End to end: decode + preprocess + invoke + postprocess, every sample at least once. Saving
        # outputs happens after the clock is read.
        count = max(len(samples), 1)
        results: list[InputResult | None] = [None] * count
        e2e_ns = np.empty(max(repeat, count), dtype=np.int64)
        clock = time.perf_counter_ns
        for i in range(e2e_ns.size):
            j = i % count
            start = clock()
            prepared = session.load(samples[j], j) if samples else first
            outputs = session.predict(prepared.tensors)
            result = post.summarize(prepared, outputs)
            e2e_ns[i] = clock() - start
            if results[j] is None:
                results[j] = result
                if save_outputs is not None:
                    post.save(Path(save_outputs), stems[j], prepared, outputs, result)

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


def check_detection_settings(conf: float, iou: float, max_detections: int) -> None:
    if not 0 <= conf <= 1:
        raise UsageError(f"--conf must be from 0 to 1, got {conf}")
    if not 0 <= iou <= 1:
        raise UsageError(f"--iou must be from 0 to 1, got {iou}")
    if max_detections < 1:
        raise UsageError(f"--max-detections must be at least 1, got {max_detections}")
