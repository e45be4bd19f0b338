"""`edgekit bench --csv/--plot`: a report's rows as a CSV file and its latency distributions as an
image, each written atomically (nothing appears under the final name unless complete)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle.files import atomic_path
from edgekit.errors import InputError
from edgekit.runtime.bench_report import BenchReport, BenchRow, row_label

PLOT_INSTALL_HINT = "--plot needs matplotlib: pip install matplotlib (the plot extra)"
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


def csv_row(row: BenchRow) -> dict[str, Any]:
    """A row's JSON fields with the latency flattened into p50_ms … max_ms and count."""
    data = row.to_dict()
    latency = data.pop("latency_ms")
    data.update({f"{k}_ms": v for k, v in latency.items() if k != "count"}, count=latency["count"])
    return {column: data[column] for column in CSV_COLUMNS}


def write_csv(report: BenchReport, path: str | os.PathLike[str]) -> Path:
    """One CSV line per row, latency flattened into p50_ms … max_ms."""
    final = Path(path)
    with atomic_path(final) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in report.rows:
            writer.writerow(csv_row(row))
    return final


def require_matplotlib() -> None:
    """Fail early (before minutes of benchmarking) when --plot cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(PLOT_INSTALL_HINT) from None


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
        with atomic_path(final) as tmp:
            figure.savefig(tmp, format=file_format, dpi=120)
    finally:
        plt.close(figure)
    return final
