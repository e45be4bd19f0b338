"""`edgekit run`: run a bundle on the device and judge its latency against the budget."""

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.output import fail, print_json, reports_errors


@reports_errors
def run(
    bundle: Path = typer.Argument(..., help="A bundle folder or its .tar.gz.", show_default=False),
    inputs: Optional[List[Path]] = typer.Argument(
        None, help="Images, .npy arrays or folders of them. None: zeros (benchmark mode).", show_default=False
    ),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Interpreter threads. Default: the target's."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed invokes before timing."),
    repeat: int = typer.Option(100, "--repeat", min=1, help="Timed invokes."),
    budget_ms: Optional[float] = typer.Option(
        None,
        "--budget-ms",
        help="Latency budget for the invoke p99. Default: the bundle's (10 ms unless the target says otherwise).",
    ),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Labels to report per input for classifiers."),
    runtime: Optional[str] = typer.Option(
        None,
        "--runtime",
        help="Force a runtime: ai-edge-litert, tflite-runtime or tensorflow. Default: the lightest installed.",
    ),
    trusted_key: Optional[Path] = typer.Option(
        None,
        "--trusted-key",
        help="Public key NAME.pub: refuse (exit 4) a bundle it did not sign, before loading anything.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Run a bundle, report answers and latency, and exit 3 when the invoke p99 is over budget."""
    from edgekit.runtime.session import run as run_bundle

    report = run_bundle(
        bundle,
        inputs or (),
        threads=threads,
        warmup=warmup,
        repeat=repeat,
        budget_ms=budget_ms,
        top_k=top_k,
        runtime=runtime,
        trusted_key=trusted_key,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        render(report)
    if report.over_budget:
        raise fail(f"over budget: invoke p99 {report.latency_ms.p99:.3f} ms > {report.budget_ms:g} ms", 3)


def render(report) -> None:
    from edgekit.cli.output import console, table

    out = console()
    delegate = {True: ", XNNPACK applied", False: ", no delegate", None: ""}[report.delegate_applied]
    out.print(
        f"{report.name} ({report.quantization}, target {report.target}) on {report.arch}"
        f"{' (emulated)' if report.emulated else ''}: {report.runtime.name} {report.runtime.version}, "
        f"{report.threads} thread(s){delegate}, loaded in {report.load_ms:.1f} ms"
    )
    for result in report.results:
        if result.top_k is not None:
            best = ", ".join(f"{t.label if t.label is not None else t.index} {t.score:.3f}" for t in result.top_k)
            out.print(f"  {result.input}: {best}")
        else:
            shapes = "; ".join(
                f"{o.name} {list(o.shape)} {[round(v, 4) for v in o.values[:4]]}" for o in result.outputs or ()
            )
            out.print(f"  {result.input}: {shapes}")
    keys = ["p50", "p90", "p99", "mean", "min", "max"]
    rows = [
        ["invoke", *[f"{getattr(report.latency_ms, k):.3f}" for k in keys]],
        ["end to end", *[f"{getattr(report.end_to_end_ms, k):.3f}" for k in keys]],
    ]
    out.print(
        table(f"latency (ms) over {report.repeat} runs after {report.warmup} warm-up", ["", *keys], rows, right=keys)
    )
    verdict = "within" if report.within_budget else "OVER"
    note = " (emulated: not enforced)" if not report.budget_enforced else ""
    out.print(f"budget {report.budget_ms:g} ms: p99 {report.latency_ms.p99:.3f} ms, {verdict} budget{note}")
