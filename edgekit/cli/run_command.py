"""`edgekit run`: run a bundle on the device and judge its latency against the budget."""

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
    runtime_option,
    trusted_key_option,
    warmup_option,
)
from edgekit.cli.output import fail, print_json, reports_errors

DETECT_PANEL = "Detection (task detect)"


def _named_paths(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Path] | None:
    """`--input image=a.png --input side=b.npy` → {"image": Path("a.png"), "side": Path("b.npy")}."""
    named: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"{value!r}: expected NAME=PATH (an input's name and its file)")
        if name in named:
            raise click.BadParameter(f"input {name!r} is given twice")
        named[name] = Path(path)
    return named or None


def named_inputs_option(help: str):
    """`--input NAME=PATH`, repeatable: one sample, input by input (run and bench)."""
    return option("--input", "input_files", multiple=True, metavar="NAME=PATH", callback=_named_paths, help=help)


@click.command("run", cls=Command)
@argument("bundle", "BUNDLE", "A bundle folder or its .tar.gz.")
@argument(
    "inputs",
    "[INPUT]...",
    "Images or .npy arrays (one-input models), .npz files keyed by input name (any model), or folders of them. "
    "None: zeros (benchmark mode).",
    nargs=-1,
)
@named_inputs_option("One more sample given input by input (repeat for each input): an image or a .npy per input.")
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
@option(
    "--save-outputs",
    type=PATH,
    metavar="DIR",
    help="Write every output of every input in full to DIR/<input stem>.<output name>.npy (float32); "
    "detect: also DIR/<input stem>.boxes.png, segment: DIR/<input stem>.mask.png.",
)
@option(
    "--conf",
    type=click.FloatRange(0, 1),
    default=defaults.CONF,
    show_default=True,
    metavar="SCORE",
    panel=DETECT_PANEL,
    help="Lowest score a box is kept with.",
)
@option(
    "--iou",
    type=click.FloatRange(0, 1),
    default=defaults.IOU,
    show_default=True,
    metavar="IOU",
    panel=DETECT_PANEL,
    help="Overlap above which non-maximum suppression drops the weaker box of a class.",
)
@option(
    "--max-detections",
    type=click.IntRange(min=1),
    default=defaults.MAX_DETECTIONS,
    show_default=True,
    metavar="N",
    panel=DETECT_PANEL,
    help="Boxes reported per input at most.",
)
@runtime_option("Force a runtime: ai-edge-litert, tflite-runtime or tensorflow. Default: the lightest installed.")
@trusted_key_option("Public key NAME.pub: refuse (exit 4) a bundle it did not sign, before loading anything.")
@json_option()
@reports_errors
def run(
    bundle: Path,
    inputs: tuple[Path, ...],
    input_files: dict[str, Path] | None,
    threads: int | None,
    warmup: int,
    repeat: int,
    budget_ms: float | None,
    top_k: int,
    save_outputs: Path | None,
    conf: float,
    iou: float,
    max_detections: int,
    runtime: str | None,
    trusted_key: Path | None,
    as_json: bool,
) -> None:
    """Run a bundle, report answers and latency, and exit 3 when the invoke p99 is over budget."""
    from edgekit.runtime.session import run as run_bundle

    report = run_bundle(
        bundle,
        inputs or (),
        input_files=input_files,
        threads=threads,
        warmup=warmup,
        repeat=repeat,
        budget_ms=budget_ms,
        top_k=top_k,
        save_outputs=save_outputs,
        conf=conf,
        iou=iou,
        max_detections=max_detections,
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
        out.print(f"  {result.input}: {describe(result)}")
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


def describe(result) -> str:
    """One line per result: top-k for a single-output classifier, else every output, and the boxes."""
    if result.top_k is not None:
        return ranking(result.top_k)
    parts = []
    for o in result.outputs:
        if o.top_k is not None:
            parts.append(f"{o.name}: {ranking(o.top_k[:3])}")
        else:
            parts.append(f"{o.name} {list(o.shape)} {[round(v, 4) for v in o.values[:4]]}")
    if result.detections is not None:
        boxes = ", ".join(
            f"{d.label if d.label is not None else d.index} {d.score:.2f} [{', '.join(f'{v:.0f}' for v in d.box)}]"
            for d in result.detections[:5]
        )
        more = f" (+{len(result.detections) - 5})" if len(result.detections) > 5 else ""
        parts.append(f"{len(result.detections)} box(es){': ' + boxes if boxes else ''}{more}")
    return "; ".join(parts)


def ranking(top_k) -> str:
    return ", ".join(f"{t.label if t.label is not None else t.index} {t.score:.3f}" for t in top_k)
