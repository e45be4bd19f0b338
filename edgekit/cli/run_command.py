"""`edgekit run`: run a bundle on the device and judge its latency against the budget."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit import defaults
from edgekit.cli.options import (
    Command,
    argument,
    budget_option,
    json_option,
    option,
    runtime_option,
    trusted_key_option,
    warmup_option,
)
from edgekit.cli.output import fail, print_json, reports_errors
from edgekit.cli.remote_options import remote_options


@click.command("run", cls=Command)
@argument("bundle", "BUNDLE", "A bundle folder or its .tar.gz.")
@argument("inputs", "[INPUT]...", "Images, .npy arrays or folders of them. None: zeros (benchmark mode).", nargs=-1)
@option("--threads", type=click.IntRange(min=1), metavar="N", help="Interpreter threads. Default: the target's.")
@warmup_option("Untimed invokes before timing.")
@option(
    "--repeat",
    type=click.IntRange(min=1),
    default=defaults.REPEAT,
    show_default=True,
    metavar="N",
    help="Timed invokes.",
)
@budget_option(
    f"Latency budget for the invoke p99. Default: the bundle's ({defaults.BUDGET_MS:g} ms unless the target says otherwise)."
)
@option(
    "--top-k",
    type=click.IntRange(min=1),
    default=defaults.TOP_K,
    show_default=True,
    metavar="K",
    help="Labels to report per input for classifiers.",
)
@runtime_option("Force a runtime: ai-edge-litert, tflite-runtime or tensorflow. Default: the lightest installed.")
@trusted_key_option("Public key NAME.pub: refuse (exit 4) a bundle it did not sign, before loading anything.")
@json_option()
@reports_errors
@remote_options
def run(
    bundle: Path,
    inputs: tuple[Path, ...],
    threads: int | None,
    warmup: int,
    repeat: int,
    budget_ms: float | None,
    top_k: int,
    runtime: str | None,
    trusted_key: Path | None,
    as_json: bool,
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
