"""Pruned beside unpruned: the same conversion mode of both models, measured the same way in the same run
(work, size, zeros, accuracy, and latency timed in alternating bursts on this machine)."""

from __future__ import annotations

import dataclasses
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.bundle.files import temporary_folder
from edgekit.conversion.accuracy import model_accuracy
from edgekit.conversion.inputs import Samples
from edgekit.conversion.quantize import CALIBRATED_MODES, convert_saved_model, saved_model_dir
from edgekit.conversion.tflite_model import TFLiteModel, in_source_order
from edgekit.runtime.inspect_model import plain_interpreter
from edgekit.runtime.interpreter import ops_details
from edgekit.runtime.macs import count_macs
from edgekit.runtime.timing import time_interleaved

WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "CONV_3D": 1}


@dataclass(frozen=True)
class ConvertedFigures:
    """One converted model, measured: work, size, zeros, accuracy and speed on this machine."""

    macs: int
    tflite_bytes: int
    gzip_bytes: int
    weight_sparsity: float
    accuracy: float | None
    p50_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "macs": self.macs,
            "tflite_bytes": self.tflite_bytes,
            "gzip_bytes": self.gzip_bytes,
            "weight_sparsity": round(self.weight_sparsity, 4),
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "p50_ms": round(self.p50_ms, 4),
        }


@dataclass(frozen=True)
class PrunedVsUnpruned:
    """The same conversion mode of the unpruned and the pruned model, side by side (same run,
    same threads, latency measured interleaved on this machine)."""

    mode: str
    threads: int
    unpruned: ConvertedFigures
    pruned: ConvertedFigures

    @property
    def speedup(self) -> float:
        return self.unpruned.p50_ms / self.pruned.p50_ms if self.pruned.p50_ms else 0.0

    @property
    def gzip_saving(self) -> float:
        return 1.0 - self.pruned.gzip_bytes / self.unpruned.gzip_bytes

    @property
    def macs_ratio(self) -> float:
        return self.pruned.macs / self.unpruned.macs if self.unpruned.macs else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "threads": self.threads,
            "unpruned": self.unpruned.to_dict(),
            "pruned": self.pruned.to_dict(),
            "macs_ratio": round(self.macs_ratio, 4),
            "gzip_saving": round(self.gzip_saving, 4),
            "speedup": round(self.speedup, 3),
        }


def tflite_weight_sparsity(interpreter: Any) -> float:
    """Share of zeros in the weight tensors of the converted model's Conv/FC operators (following
    a DEQUANTIZE back to the stored float16 weights)."""
    ops = ops_details(interpreter)
    producer = {int(out): op for op in ops for out in op["outputs"]}
    zeros = total = 0
    for op in ops:
        slot = WEIGHT_OPS.get(op["op_name"])
        if slot is None or len(op["inputs"]) <= slot:
            continue
        index = int(op["inputs"][slot])
        source_op = producer.get(index)
        if source_op is not None and source_op["op_name"] == "DEQUANTIZE":
            index = int(source_op["inputs"][0])
        elif source_op is not None:
            continue  # weights computed at run time: not a stored tensor
        weights = interpreter.get_tensor(index)
        zeros += int((weights == 0).sum())
        total += int(weights.size)
    return zeros / total if total else 0.0


def interleaved_p50(contents: Sequence[bytes], threads: int, seconds: float = 1.5, min_runs: int = 20) -> list[float]:
    """Invoke p50 (ms) of each model, timed in alternating bursts so that a busy machine slows all of
    them alike; zeros as input, set once outside the timed region."""
    models = [TFLiteModel(content, threads=threads) for content in contents]
    for model in models:
        model.set_zeros()
    timings = time_interleaved([model.interpreter.invoke for model in models], seconds, min_runs=min_runs)
    return [float(np.median(series)) / 1e6 for series in timings]


def measure_converted(
    path: Path, evaluation: Samples | None, p50_ms: float, output_names: Sequence[str] = ()
) -> ConvertedFigures:
    content = path.read_bytes()
    interpreter = plain_interpreter(path)
    interpreter.allocate_tensors()
    accuracy = None
    if evaluation is not None and evaluation.labelled:
        accuracy = model_accuracy(TFLiteModel(content).predict_batch, evaluation, output_names)
    return ConvertedFigures(
        macs=count_macs(path),
        tflite_bytes=len(content),
        gzip_bytes=len(gzip.compress(content, compresslevel=9, mtime=0)),
        weight_sparsity=tflite_weight_sparsity(interpreter),
        accuracy=accuracy,
        p50_ms=p50_ms,
    )


def compare_converted(
    mode: str,
    unpruned: bytes,
    pruned: bytes,
    evaluation: Samples | None,
    threads: int,
    output_names: Sequence[str] = (),
) -> PrunedVsUnpruned:
    """Measure the unpruned and the pruned conversion of one mode the same way, in the same run."""
    threads = max(1, min(threads, os.cpu_count() or 1))
    p50 = interleaved_p50([unpruned, pruned], threads)
    with temporary_folder("edgekit-prune-") as tmp:
        paths = [Path(tmp) / "unpruned.tflite", Path(tmp) / "pruned.tflite"]
        paths[0].write_bytes(unpruned)
        paths[1].write_bytes(pruned)
        before = measure_converted(paths[0], evaluation, p50[0], output_names)
        after = measure_converted(paths[1], evaluation, p50[1], output_names)
    return PrunedVsUnpruned(mode, threads, before, after)


def compare_with_unpruned(
    report: Any,
    unpruned: Any,
    pruned_models: dict[str, bytes],
    calibration: dict[str, np.ndarray] | None,
    evaluation: Samples | None,
    threads: dict[str, int],
    verbose: bool = False,
) -> Any:
    """`report` (a PruningReport) with each mode's pruned conversion set beside the unpruned model's,
    converted with the same settings."""
    comparisons = []
    names = [o.name for o in unpruned.outputs]
    keyed = None if calibration is None else unpruned.signature_batch(calibration)
    with saved_model_dir(unpruned, verbose) as export_dir:
        for mode, content in pruned_models.items():
            baseline = convert_saved_model(export_dir, mode, keyed if mode in CALIBRATED_MODES else None, verbose)
            baseline = in_source_order(baseline, (unpruned.signature_keys, unpruned.output_keys))
            comparisons.append(compare_converted(mode, baseline, content, evaluation, threads.get(mode, 1), names))
    return dataclasses.replace(report, comparisons=tuple(comparisons))
