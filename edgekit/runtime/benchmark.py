"""`edgekit bench`: latency measured the way TFLite's benchmark tool measures it.

Per (model, thread count): a fresh interpreter (its creation and tensor allocation is the load
time), one first invoke timed on its own (XNNPACK packs weights lazily, so it is slower), untimed
warm-up, then invokes timed one by one with `perf_counter_ns`. Inputs are set once before timing;
nothing but `invoke()` sits between the two clock reads. Peak RSS is the process high-water mark
while the row ran (reset per row where Linux allows it).
"""

from __future__ import annotations

import contextlib
import csv
import gc
import math
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from edgekit.bundle import ARCHIVE_SUFFIX, MAX_THREADS, open_bundle
from edgekit.errors import InputError, UsageError
from edgekit.runtime.interpreter import RuntimeInfo, delegate_applied, find_runtime, load_interpreter
from edgekit.runtime.session import Session, is_emulated
from edgekit.runtime.stats import LatencyStats, within_budget
from edgekit.runtime.timing import time_invokes

Progress = Callable[[str, int, int], None]
DEFAULT_REPEAT = 100
DEFAULT_WARMUP = 10
INPUT_SEED = 0
PLOT_INSTALL_HINT = "--plot needs matplotlib: pip install 'edgekit[plot]'"
CSV_COLUMNS = (
    "model",
    "name",
    "quantization",
    "threads",
    "delegate_applied",
    "load_ms",
    "first_invoke_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "count",
    "throughput_per_s",
    "peak_rss_bytes",
    "macs",
    "gmacs_per_s",
    "budget_ms",
    "within_budget",
)


@dataclass(frozen=True)
class BenchRow:
    """One model at one thread count."""

    model: str
    name: str
    quantization: str | None
    threads: int
    delegate_applied: bool | None
    load_ms: float
    first_invoke_ms: float
    latency_ms: LatencyStats
    throughput_per_s: float
    peak_rss_bytes: int | None
    macs: int | None
    gmacs_per_s: float | None
    budget_ms: float | None
    within_budget: bool | None
    # The raw invoke timings (read-only int64 ns), for plots; too long for the JSON report.
    timings_ns: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "name": self.name,
            "quantization": self.quantization,
            "threads": self.threads,
            "delegate_applied": self.delegate_applied,
            "load_ms": round(self.load_ms, 3),
            "first_invoke_ms": round(self.first_invoke_ms, 4),
            "latency_ms": self.latency_ms.to_dict(),
            "throughput_per_s": round(self.throughput_per_s, 2),
            "peak_rss_bytes": self.peak_rss_bytes,
            "macs": self.macs,
            "gmacs_per_s": None if self.gmacs_per_s is None else round(self.gmacs_per_s, 3),
            "budget_ms": self.budget_ms,
            "within_budget": self.within_budget,
        }

    def csv_row(self) -> dict[str, Any]:
        data = self.to_dict()
        latency = data.pop("latency_ms")
        data.update({f"{k}_ms": v for k, v in latency.items() if k != "count"}, count=latency["count"])
        return {column: data[column] for column in CSV_COLUMNS}


@dataclass(frozen=True)
class BenchReport:
    """The result of `edgekit bench`: one row per (model, threads), and how they were measured."""

    runtime: RuntimeInfo
    arch: str
    cores: int
    emulated: bool
    warmup: int
    repeat: int | None
    min_seconds: float | None
    budget_ms: float | None
    budget_enforced: bool
    peak_rss_scope: str
    rows: tuple[BenchRow, ...]

    @property
    def over_budget_rows(self) -> tuple[BenchRow, ...]:
        return tuple(row for row in self.rows if row.within_budget is False)

    @property
    def over_budget(self) -> bool:
        """True only when a budget was given explicitly, is enforced, and some row misses it."""
        return self.budget_ms is not None and self.budget_enforced and bool(self.over_budget_rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime.name,
            "runtime_version": self.runtime.version,
            "arch": self.arch,
            "cores": self.cores,
            "emulated": self.emulated,
            "warmup": self.warmup,
            "repeat": self.repeat,
            "min_seconds": self.min_seconds,
            "budget_ms": self.budget_ms,
            "budget_enforced": self.budget_enforced,
            "over_budget": self.over_budget,
            "peak_rss_scope": self.peak_rss_scope,
            "rows": [row.to_dict() for row in self.rows],
        }


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# --- peak RSS ----------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset the process's peak-RSS mark (Linux: write 5 to /proc/self/clear_refs); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """The process's peak resident set size so far (since the last reset, where resets work)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


# --- timing ------------------------------------------------------------------------------------


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
    from edgekit.errors import EdgekitError
    from edgekit.runtime.macs import count_macs

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
) -> BenchRow:
    """Load a fresh interpreter with `threads` threads and time it."""
    gc.collect()
    reset_peak_rss()
    interpreter, load_ms = _load(model, threads, runtime)
    for index, array in benchmark_inputs(interpreter):
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
    warmup: int = DEFAULT_WARMUP,
    repeat: int | None = None,
    min_seconds: float | None = None,
    budget_ms: float | None = None,
    runtime: str | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Benchmark bundles or `.tflite` models side by side over a sweep of thread counts.

    `threads` defaults to each bundle's target (a bare model: the usable cores). Without `repeat` or
    `min_seconds`, 100 timed invokes per row. `budget_ms` (default: each bundle's) judges the invoke p99.
    """
    if not models:
        raise UsageError("give at least one bundle or .tflite model")
    if repeat is not None and min_seconds is not None:
        raise UsageError("--repeat and --min-seconds exclude each other; give one")
    if repeat is None and min_seconds is None:
        repeat = DEFAULT_REPEAT
    if repeat is not None and repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {repeat}")
    if min_seconds is not None and not 0 < min_seconds < math.inf:
        raise UsageError(f"--min-seconds must be a positive number, got {min_seconds}")
    if warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {warmup}")
    if budget_ms is not None and not 0 < budget_ms < math.inf:
        raise UsageError(f"--budget-ms must be a positive number, got {budget_ms}")
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
                if progress:
                    progress(f"{model.name} x{count}", len(rows), total)
                rows.append(bench_row(model, count, chosen_runtime, warmup, repeat, min_seconds, macs))
    if progress:
        progress("done", len(rows), total)
    emulated = is_emulated()
    return BenchReport(
        runtime=chosen_runtime,
        arch=platform.machine(),
        cores=usable_cores(),
        emulated=emulated,
        warmup=warmup,
        repeat=repeat,
        min_seconds=min_seconds,
        budget_ms=None if budget_ms is None else float(budget_ms),
        budget_enforced=not emulated,
        peak_rss_scope="row" if per_row_rss else "process",
        rows=tuple(rows),
    )


# --- writing results ---------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path next to `final`, renamed into place on success and removed on failure."""
    final = Path(final)
    if not final.parent.is_dir():
        raise InputError(f"{final}: folder {final.parent} does not exist")
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_csv(report: BenchReport, path: str | os.PathLike[str]) -> Path:
    """One CSV line per row, latency flattened into p50_ms … max_ms."""
    final = Path(path)
    with _atomic_path(final) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in report.rows:
            writer.writerow(row.csv_row())
    return final


def require_matplotlib() -> None:
    """Fail early (before minutes of benchmarking) when --plot cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(PLOT_INSTALL_HINT) from None


def row_label(row: BenchRow) -> str:
    mode = f" {row.quantization}" if row.quantization and row.quantization not in row.name else ""
    return f"{row.name}{mode} x{row.threads}"


def save_latency_plot(report: BenchReport, path: str | os.PathLike[str]) -> Path:
    """The latency distribution of every row (box: p25-p75, whiskers: p1-p99, line: p50) as an image."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(PLOT_INSTALL_HINT) from None
    final = Path(path)
    file_format = final.suffix.lower().lstrip(".")
    rows = [row for row in report.rows if row.timings_ns is not None and row.timings_ns.size]
    if not rows:
        raise InputError("nothing to plot: no timings")
    figure, axes = plt.subplots(figsize=(9, 1.2 + 0.45 * len(rows)))
    try:
        if file_format not in figure.canvas.get_supported_filetypes():
            raise InputError(f"{final}: unsupported plot format {final.suffix!r} (use .png, .svg or .pdf)")
        samples = [row.timings_ns.astype(np.float64) / 1e6 for row in rows]
        axes.boxplot(samples, vert=False, whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
        axes.set_yticks(range(1, len(rows) + 1), [row_label(row) for row in rows])
        axes.invert_yaxis()
        low = min(float(s.min()) for s in samples)
        high = max(float(s.max()) for s in samples)
        if low > 0 and high / low > 20:
            axes.set_xscale("log")
        budgets = sorted({row.budget_ms for row in rows if row.budget_ms is not None})
        for budget in budgets:
            if budget <= high * 2:
                axes.axvline(budget, color="red", linestyle="--", linewidth=1, label=f"budget {budget:g} ms")
        if budgets and axes.get_legend_handles_labels()[0]:
            axes.legend(loc="lower right", fontsize="small")
        axes.set_xlabel("invoke latency (ms)")
        runs = f"{report.repeat} runs" if report.repeat is not None else f"{report.min_seconds:g} s"
        axes.set_title(
            f"edgekit bench: {report.runtime.name} {report.runtime.version} on {report.arch}, "
            f"{runs} per row after {report.warmup} warm-up",
            fontsize="medium",
        )
        figure.tight_layout()
        with _atomic_path(final) as tmp:
            figure.savefig(tmp, format=file_format, dpi=120)
    finally:
        plt.close(figure)
    return final
