"""`edgekit bench`: bundles or .tflite models side by side over a sweep of thread counts."""

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from edgekit.cli.output import fail, human_bytes, print_json, reports_errors


def parse_threads(values: Optional[List[str]]) -> Optional[List[int]]:
    """Accept `--threads 1,2,4` or the option repeated."""
    if not values:
        return None
    counts = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit() or int(part) < 1:
                raise typer.BadParameter(f"{part!r} is not a thread count (1 or more)", param_hint="--threads")
            counts.append(int(part))
    return counts


class RowProgress:
    """A progress bar redrawn only between rows, on a terminal and never under --json.

    The shared StepProgress redraws from a background thread ten times a second; here that thread
    would run Python (and take a core) while invokes are being timed, so this bar redraws only
    when a row starts.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stdout.isatty()
        self._progress = None
        self._task = None

    def __enter__(self) -> "RowProgress":
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} rows"),
                TimeElapsedColumn(),
                transient=True,
                auto_refresh=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("bench", total=None)
        return self

    def __call__(self, label: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"bench: {label}", completed=done, total=total)
            self._progress.refresh()

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def check_output_path(path: Optional[Path], option: str) -> None:
    """Refuse an unwritable destination before the benchmark runs, not after."""
    if path is not None and not path.resolve().parent.is_dir():
        raise typer.BadParameter(f"folder {path.parent} does not exist", param_hint=option)


@reports_errors
def bench(
    models: List[Path] = typer.Argument(
        ...,
        metavar="BUNDLE|MODEL.tflite",
        help="Bundle folders, bundle .tar.gz files or .tflite models, benchmarked side by side.",
        show_default=False,
    ),
    threads: Optional[List[str]] = typer.Option(
        None,
        "--threads",
        metavar="1,2,4",
        help="Thread counts to sweep, e.g. 1,2,4. Default: each bundle's target (a bare model: this machine's cores).",
    ),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed invokes after the first (timed on its own)."),
    repeat: Optional[int] = typer.Option(
        None, "--repeat", min=1, help="Timed invokes per row. Default 100 (unless --min-seconds)."
    ),
    min_seconds: Optional[float] = typer.Option(
        None, "--min-seconds", help="Time invokes for at least this long per row instead of a fixed --repeat."
    ),
    budget_ms: Optional[float] = typer.Option(
        None,
        "--budget-ms",
        help="Latency budget for the invoke p99; exit 3 when any row is over it. Default: each bundle's, reported only.",
    ),
    runtime: Optional[str] = typer.Option(
        None, "--runtime", help="Force a runtime: ai-edge-litert, tflite-runtime or tensorflow."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write the rows to this CSV file."),
    plot_path: Optional[Path] = typer.Option(
        None, "--plot", help="Draw each row's latency distribution to this image (.png, .svg, .pdf; needs matplotlib)."
    ),
) -> None:
    """Measure load time, first invoke, latency percentiles, throughput, peak RSS and GMAC/s per model and thread count."""
    from edgekit.runtime.benchmark import bench as run_bench
    from edgekit.runtime.benchmark import require_matplotlib, save_latency_plot, write_csv

    counts = parse_threads(threads)
    check_output_path(csv_path, "--csv")
    check_output_path(plot_path, "--plot")
    if plot_path is not None:
        require_matplotlib()
    with RowProgress(not as_json) as progress:
        report = run_bench(
            models,
            threads=counts,
            warmup=warmup,
            repeat=repeat,
            min_seconds=min_seconds,
            budget_ms=budget_ms,
            runtime=runtime,
            progress=progress,
        )
    if csv_path is not None:
        write_csv(report, csv_path)
    if plot_path is not None:
        save_latency_plot(report, plot_path)
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
        f"{runs} per row after 1 first + {report.warmup} warm-up invokes"
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
