"""`edgekit bench`: bundles or .tflite models side by side over a sweep of thread counts."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit import defaults
from edgekit.cli.options import (
    PATH,
    Command,
    argument,
    budget_option,
    json_option,
    option,
    output_file_option,
    runtime_option,
    thread_counts_option,
    warmup_option,
)
from edgekit.cli.output import fail, human_bytes, print_json, reports_errors
from edgekit.cli.progress_bar import ProgressBar
from edgekit.cli.run_command import named_inputs_option


@click.command("bench", cls=Command)
@argument(
    "models",
    "BUNDLE|MODEL.tflite...",
    "Bundle folders, bundle .tar.gz files or .tflite models, benchmarked side by side.",
    nargs=-1,
    required=True,
)
@thread_counts_option(
    "Thread counts to sweep, e.g. 1,2,4. Default: each bundle's target (a bare model: this machine's cores)."
)
@warmup_option("Untimed invokes after the first (timed on its own).")
@option(
    "--repeat",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"Timed invokes per row. Default {defaults.REPEAT} (unless --min-seconds).",
)
@option(
    "--min-seconds",
    type=float,
    metavar="SECONDS",
    help="Time invokes for at least this long per row instead of a fixed --repeat.",
)
@option(
    "--inputs",
    type=PATH,
    metavar="FILE",
    help="Time every model on this sample instead of random values: a .npz keyed by input name, "
    "or an image or .npy for one-input models.",
)
@named_inputs_option("Time on this sample, given input by input (repeat for each input) instead of random values.")
@budget_option(
    "Latency budget for the invoke p99; exit 3 when any row is over it. Default: each bundle's, reported only."
)
@runtime_option("Force a runtime: ai-edge-litert, tflite-runtime or tensorflow.")
@json_option()
@output_file_option("--csv", "Also write the rows to this CSV file.")
@output_file_option(
    "--plot", "Draw each row's latency distribution to this image (.png, .svg, .pdf; needs matplotlib)."
)
@reports_errors
def bench(
    models: tuple[Path, ...],
    threads: list[int] | None,
    warmup: int,
    repeat: int | None,
    min_seconds: float | None,
    inputs: Path | None,
    input_files: dict[str, Path] | None,
    budget_ms: float | None,
    runtime: str | None,
    as_json: bool,
    csv: Path | None,
    plot: Path | None,
) -> None:
    """Measure load time, first invoke, latency percentiles, throughput, peak RSS and GMAC/s per model and thread count."""
    from edgekit.runtime.benchmark import bench as run_bench
    from edgekit.runtime.benchmark import require_matplotlib, save_latency_plot, write_csv

    if plot is not None:
        require_matplotlib()
    # Redrawn only between rows: a refresh thread would take a core while invokes are timed.
    with ProgressBar("bench", enabled=not as_json, background=False) as progress:
        report = run_bench(
            list(models),
            threads=threads,
            warmup=warmup,
            repeat=repeat,
            min_seconds=min_seconds,
            budget_ms=budget_ms,
            runtime=runtime,
            progress=progress,
            inputs=inputs,
            input_files=input_files,
        )
    if csv is not None:
        write_csv(report, csv)
    if plot is not None:
        save_latency_plot(report, plot)
    if as_json:
        print_json(report.to_dict())
    else:
        render(report)
    if report.over_budget:
        worst = max(report.over_budget_rows, key=lambda row: row.latency_ms.p99)
        raise fail(
            f"over budget: {len(report.over_budget_rows)} of {len(report.rows)} row(s) have an invoke p99 over "
            f"{report.budget_ms:g} ms (worst {worst.name} x{worst.threads}: {worst.latency_ms.p99:.3f} ms)",
            3,
        )


def render(report) -> None:
    from edgekit.cli.output import console, table
    from edgekit.runtime.benchmark import row_label

    out = console()
    runs = f"{report.repeat} runs" if report.repeat is not None else f"at least {report.min_seconds:g} s"
    out.print(
        f"{report.runtime.name} {report.runtime.version} on {report.arch}"
        f"{' (emulated)' if report.emulated else ''}, {report.cores} usable core(s); "
        f"{runs} per row after 1 first + {report.warmup} warm-up invokes; inputs: {report.inputs}"
    )
    latency_keys = ["p50", "p90", "p99", "mean", "std", "min", "max"]
    columns = ["model", "load", "first", *latency_keys, "inf/s", "peak RSS", "GMAC/s", "XNNPACK", "budget"]
    rows = []
    for row in report.rows:
        latency = row.latency_ms
        verdict = "-" if row.within_budget is None else ("ok" if row.within_budget else "OVER")
        budget = "-" if row.budget_ms is None else f"{verdict} ({row.budget_ms:g})"
        rows.append(
            [
                row_label(row),
                f"{row.load_ms:.1f}",
                f"{row.first_invoke_ms:.3f}",
                *[f"{getattr(latency, k):.3f}" for k in latency_keys],
                f"{row.throughput_per_s:.1f}",
                human_bytes(row.peak_rss_bytes),
                "-" if row.gmacs_per_s is None else f"{row.gmacs_per_s:.2f}",
                {True: "yes", False: "no", None: "?"}[row.delegate_applied],
                budget,
            ]
        )
    right = [c for c in columns if c not in ("model", "XNNPACK", "budget")]
    out.print(
        table(
            "latency (ms); peak RSS per row" if report.peak_rss_scope == "row" else "latency (ms)",
            columns,
            rows,
            right=right,
        )
    )
    if report.budget_ms is not None and not report.budget_enforced:
        out.print("budget not enforced: emulated timings say nothing about the device")
