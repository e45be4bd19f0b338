"""`edgekit bench`: latency measured the way TFLite's benchmark tool measures it.

Per (model, thread count): a fresh interpreter (its creation and tensor allocation is the load
time), one first invoke timed on its own (XNNPACK packs weights lazily, so it is slower), untimed
warm-up, then invokes timed one by one (edgekit.runtime.timing). Inputs are set once before timing;
nothing but `invoke()` sits between the two clock reads. Peak RSS is the process high-water mark
while the row ran (reset per row where Linux allows it).

The report types live in bench_report.py, the CSV and the plot in bench_files.py, the /proc
readings in process.py; their names stay importable from here.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from edgekit import defaults
from edgekit.bundle import ARCHIVE_SUFFIX, MAX_THREADS, TensorSpec, open_bundle
from edgekit.errors import EdgekitError, InputError, UsageError
from edgekit.progress import Progress
from edgekit.progress import report as report_progress
from edgekit.runtime.bench_files import CSV_COLUMNS as CSV_COLUMNS
from edgekit.runtime.bench_files import PLOT_INSTALL_HINT as PLOT_INSTALL_HINT
from edgekit.runtime.bench_files import csv_row as csv_row
from edgekit.runtime.bench_files import require_matplotlib as require_matplotlib
from edgekit.runtime.bench_files import save_latency_plot as save_latency_plot
from edgekit.runtime.bench_files import write_csv as write_csv
from edgekit.runtime.bench_report import BenchReport, BenchRow
from edgekit.runtime.bench_report import row_label as row_label
from edgekit.runtime.interpreter import RuntimeInfo, delegate_applied, find_runtime, load_interpreter, tensor_spec
from edgekit.runtime.macs import count_macs
from edgekit.runtime.process import machine_arch, peak_rss_bytes, reset_peak_rss, usable_cores
from edgekit.runtime.samples import Sample, prepare_sample, sample_name
from edgekit.runtime.session import Session, is_emulated
from edgekit.runtime.stats import LatencyStats, within_budget
from edgekit.runtime.timing import time_invokes

INPUT_SEED = 0


# --- inputs ------------------------------------------------------------------------------------


def benchmark_inputs(interpreter: Any, seed: int = INPUT_SEED) -> list[tuple[int, np.ndarray]]:
    """(tensor index, array) for every input: seeded random values in the input's dtype, like
    TFLite's benchmark tools (latency of these models does not depend on the values)."""
    rng = np.random.default_rng(seed)
    inputs = []
    for detail in interpreter.get_input_details():
        shape = tuple(int(d) for d in detail["shape"])
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            array = rng.uniform(-1.0, 1.0, shape).astype(dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            array = rng.integers(max(info.min, -128), min(info.max, 127), shape, endpoint=True).astype(dtype)
        else:
            array = np.zeros(shape, dtype=dtype)
        inputs.append((int(detail["index"]), array))
    return inputs


def given_inputs(
    interpreter: Any, sample: Sample, specs: tuple[TensorSpec, ...] | None
) -> list[tuple[int, np.ndarray]]:
    """(tensor index, array) for every input from a given sample (`--inputs`, `--input NAME=PATH`),
    prepared as `edgekit run` prepares it. A bare `.tflite` knows its inputs by the interpreter's names
    and has no image preprocessing."""
    details = interpreter.get_input_details()
    specs = specs or tuple(tensor_spec(d) for d in details)
    tensors = prepare_sample(sample, specs).tensors
    return [(int(d["index"]), tensors[spec.name]) for d, spec in zip(details, specs)]


# --- models ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    """What bench needs to know about one path on the command line."""

    given: str
    name: str
    model_path: Path
    quantization: str | None
    default_threads: int
    budget_ms: float | None
    bundle: Any = None  # an open Bundle, or None for a bare .tflite


def is_bundle_path(path: Path) -> bool:
    return path.is_dir() or path.name.endswith(ARCHIVE_SUFFIX)


@contextlib.contextmanager
def _open_model(path: Path, budget_ms: float | None) -> Iterator[_Model]:
    """A bundle (folder or archive, verified) or a bare `.tflite`, open for the duration of its rows."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if is_bundle_path(path):
        with open_bundle(path) as bundle:
            manifest = bundle.manifest
            yield _Model(
                given=str(path),
                name=manifest.name,
                model_path=bundle.model_path,
                quantization=manifest.quantization,
                default_threads=manifest.threads,
                budget_ms=budget_ms if budget_ms is not None else manifest.budget_ms,
                bundle=bundle,
            )
        return
    if path.suffix.lower() != ".tflite":
        raise InputError(f"{path}: not a bundle (folder or {ARCHIVE_SUFFIX}) or a .tflite model")
    # A bare `model.tflite` (as inside a bundle) is better known by its folder's name.
    name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    yield _Model(
        given=str(path),
        name=name,
        model_path=path,
        quantization=None,
        default_threads=usable_cores(),
        budget_ms=budget_ms,
    )


def _load(model: _Model, threads: int, runtime: RuntimeInfo) -> tuple[Any, float]:
    """(interpreter, load ms): a bundle through Session (as `edgekit run` loads it), a bare model directly."""
    if model.bundle is not None:
        session = Session(model.bundle, threads=threads, runtime=runtime.name)
        return session.interpreter, session.load_ms
    start = time.perf_counter_ns()
    interpreter = load_interpreter(str(model.model_path), threads, runtime)
    return interpreter, (time.perf_counter_ns() - start) / 1e6


def model_macs(model_path: Path) -> int | None:
    """MACs of one inference where edgekit can count them (None when no counted operator is present)."""
    try:
        macs = count_macs(model_path)
    except EdgekitError:
        return None
    return macs or None


def bench_row(
    model: _Model,
    threads: int,
    runtime: RuntimeInfo,
    warmup: int,
    repeat: int | None,
    min_seconds: float | None,
    macs: int | None,
    sample: Sample | None = None,
) -> BenchRow:
    """Load a fresh interpreter with `threads` threads and time it (on `sample`, else random inputs)."""
    gc.collect()
    reset_peak_rss()
    interpreter, load_ms = _load(model, threads, runtime)
    specs = model.bundle.manifest.inputs if model.bundle is not None else None
    try:
        given = given_inputs(interpreter, sample, specs) if sample is not None else None
    except InputError as exc:  # the same sample goes to every model: say which one it does not fit
        raise InputError(f"{model.given}: {exc}") from None
    for index, array in given or benchmark_inputs(interpreter):
        interpreter.set_tensor(index, array)
    # Collection pauses would land inside timed invokes: collect now, then keep the collector off.
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        first_ns, timings = time_invokes(interpreter.invoke, warmup, repeat, min_seconds)
    finally:
        if was_enabled:
            gc.enable()
    peak = peak_rss_bytes()
    applied = delegate_applied(interpreter)
    del interpreter
    latency = LatencyStats.from_ns(timings)
    timings.setflags(write=False)
    return BenchRow(
        model=model.given,
        name=model.name,
        quantization=model.quantization,
        threads=threads,
        delegate_applied=applied,
        load_ms=load_ms,
        first_invoke_ms=first_ns / 1e6,
        latency_ms=latency,
        throughput_per_s=1000.0 / latency.mean if latency.mean > 0 else 0.0,
        peak_rss_bytes=peak,
        macs=macs,
        gmacs_per_s=macs / latency.p50 / 1e6 if macs and latency.p50 > 0 else None,
        budget_ms=model.budget_ms,
        within_budget=None if model.budget_ms is None else within_budget(latency, model.budget_ms),
        timings_ns=timings,
    )


def bench(
    models: Sequence[str | os.PathLike[str]],
    threads: Sequence[int] | None = None,
    warmup: int = defaults.WARMUP,
    repeat: int | None = None,
    min_seconds: float | None = None,
    budget_ms: float | None = None,
    runtime: str | None = None,
    progress: Progress | None = None,
    inputs: Sample | None = None,
    input_files: Mapping[str, Any] | None = None,
) -> BenchReport:
    """Benchmark bundles or `.tflite` models side by side over a sweep of thread counts.

    Inputs are seeded random values, or one given sample for every model: `inputs` (a `.npz` keyed by
    input name, an image or `.npy` for one-input models, or a mapping) or `input_files` (the CLI's
    `--input NAME=PATH`).

    `threads` defaults to each bundle's target (a bare model: the usable cores). Without `repeat` or
    `min_seconds`, `defaults.REPEAT` timed invokes per row. `budget_ms` (default: each bundle's) judges
    the invoke p99.
    """
    if not models:
        raise UsageError("give at least one bundle or .tflite model")
    if repeat is not None and min_seconds is not None:
        raise UsageError("--repeat and --min-seconds exclude each other; give one")
    if repeat is None and min_seconds is None:
        repeat = defaults.REPEAT
    if repeat is not None and repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {repeat}")
    if min_seconds is not None and not 0 < min_seconds < math.inf:
        raise UsageError(f"--min-seconds must be a positive number, got {min_seconds}")
    if warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {warmup}")
    if budget_ms is not None and not 0 < budget_ms < math.inf:
        raise UsageError(f"--budget-ms must be a positive number, got {budget_ms}")
    if inputs is not None and input_files:
        raise UsageError("--inputs and --input exclude each other; give one sample either way")
    sample = dict(input_files) if input_files else inputs
    sweep = list(dict.fromkeys(int(t) for t in threads)) if threads else None
    if sweep and not 1 <= min(sweep) <= max(sweep) <= MAX_THREADS:
        raise UsageError(f"--threads must be from 1 to {MAX_THREADS}, got {','.join(map(str, sweep))}")
    paths = [Path(m) for m in models]
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
    chosen_runtime = find_runtime(runtime)
    per_row_rss = reset_peak_rss()

    total = len(paths) * len(sweep) if sweep else len(paths)
    rows: list[BenchRow] = []
    for path in paths:
        with _open_model(path, budget_ms) as model:
            macs = model_macs(model.model_path)
            for count in sweep or [model.default_threads]:
                report_progress(progress, f"{model.name} x{count}", len(rows), total)
                rows.append(bench_row(model, count, chosen_runtime, warmup, repeat, min_seconds, macs, sample))
    report_progress(progress, "done", len(rows), total)
    emulated = is_emulated()
    return BenchReport(
        runtime=chosen_runtime,
        arch=machine_arch(),
        cores=usable_cores(),
        emulated=emulated,
        warmup=warmup,
        repeat=repeat,
        min_seconds=min_seconds,
        budget_ms=None if budget_ms is None else float(budget_ms),
        budget_enforced=not emulated,
        peak_rss_scope="row" if per_row_rss else "process",
        rows=tuple(rows),
        inputs="random" if sample is None else sample_name(sample, 0),
    )
