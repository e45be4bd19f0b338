"""`edgekit debug`: where int8 quantization hurts a model, layer by layer, worst first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgekit import defaults
from edgekit.cli.options import (
    Command,
    argument,
    calibration_option,
    eval_data_option,
    json_option,
    labels_option,
    numbers_option,
    option,
    size_option,
    threshold_options,
    unsafe_load_option,
    verbose_option,
)
from edgekit.cli.output import console, human_bytes, print_json, python_warnings, reports_errors, table
from edgekit.cli.progress_bar import ProgressBar


@click.command("debug", cls=Command)
@argument("model", "MODEL", "A Keras 3 .keras / legacy .h5 file or a SavedModel folder.")
@calibration_option("Representative inputs for int8: a folder of images, a .npy or a .npz (key x).", required=True)
@size_option("--calibration-size", defaults.CALIBRATION_SIZE, "How many calibration samples to use.")
@numbers_option("--mean", "Pixel mean on 0-255 values (as for convert).")
@numbers_option("--std", "Pixel std on 0-255 values (as for convert).")
@eval_data_option(
    "Check the int8 model on these inputs instead of the calibration data: a folder per class or a .npz with x and y (labels give accuracy)."
)
@size_option("--eval-size", defaults.EVAL_SIZE, "How many evaluation samples to use.")
@labels_option("Class labels, one per line (maps class folders).")
@threshold_options(convert=False)
@option(
    "--top",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    metavar="N",
    help="Layers to show (the JSON has all).",
)
@option(
    "--search/--no-search",
    default=True,
    show_default=True,
    help="When int8 misses the thresholds, search which layers to keep in float.",
)
@unsafe_load_option("Load Keras files that carry Python code (Lambda layers). Only for files you trust.")
@json_option()
@verbose_option()
@reports_errors
def debug(
    model: Path,
    calibration: Path,
    calibration_size: int,
    mean: list[float] | None,
    std: list[float] | None,
    eval_data: Path | None,
    eval_size: int,
    labels: Path | None,
    max_accuracy_drop: float | None,
    min_agreement: float,
    min_cosine: float,
    top: int,
    search: bool,
    unsafe_load: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Report, layer by layer and worst first, how much error int8 quantization adds (TFLite's
    QuantizationDebugger), and which layers to keep in float when the int8 model misses the thresholds.

    The error of a layer is per channel: RMS error over RMS value, capped at 1, averaged over the
    layer's output channels. 0 is perfect; 1 means every channel rounds to nothing, as happens when a
    few outlier channels stretch the int8 range.
    """
    python_warnings(verbose)
    from edgekit.conversion.debug import debug as run_debug
    from edgekit.conversion.verify import Thresholds

    with ProgressBar("debugging int8", enabled=not as_json) as progress:
        report = run_debug(
            model,
            calibration,
            calibration_size=calibration_size,
            mean=mean,
            std=std,
            eval_data=eval_data,
            eval_size=eval_size,
            labels=labels,
            thresholds=Thresholds(min_agreement, min_cosine, max_accuracy_drop),
            search=search,
            unsafe_load=unsafe_load,
            verbose=verbose,
            progress=progress,
        )
    if as_json:
        print_json(report.to_dict())
        return
    out = console()
    out.print(layer_table(report.layers, top, f"{report.model}: int8 error per layer, worst first"))
    if report.int8 is not None:
        out.print(mixed_line("int8", report.int8))
    if report.suspects:
        out.print(suspects_line(report.suspects))
    suggestion = report.suggestion
    if suggestion is not None:
        for step in suggestion.steps:
            out.print(mixed_line(f"keep {', '.join(step.layers)} in float", step))
        if suggestion.chosen.verdict.passed:
            out.print(f"suggestion: edgekit convert ... -q int8 --keep-float {','.join(suggestion.chosen.layers)}")
        else:
            out.print("no combination of the worst layers passes the thresholds; consider float16 or int16x8")
    elif report.int8 is not None and report.int8.verdict.passed:
        out.print("int8 passes the thresholds: nothing needs to stay in float")


def layer_table(layers: Any, top: int, title: str):
    rows = []
    for rank, layer in enumerate(layers[:top], start=1):
        rows.append(
            [
                rank,
                layer.layer or "-",
                layer.op,
                f"{layer.channel_error:.4f}",
                f"{layer.rmse_over_scale:.3f}",
                f"{layer.value_range:.4g}",
                f"{layer.max_abs_error:.4g}",
                str(len(layer.readers)) if layer.readers else "-",
            ]
        )
    columns = ["#", "layer", "op", "channel err", "rmse/scale", "int8 range", "max abs err", "readers"]
    return table(title, columns, rows, right=("#", "channel err", "rmse/scale", "int8 range", "max abs err", "readers"))


def mixed_line(label: str, model: Any) -> str:
    """One line per int8 / mixed model: size, agreement, accuracy, verdict."""
    verdict = model.verdict
    parts = [f"{label}: {human_bytes(model.bytes)}"]
    if verdict.fidelity.top1_agreement is not None:
        parts.append(f"top-1 agreement {verdict.fidelity.top1_agreement:.3f}")
    parts.append(f"cosine {verdict.fidelity.cosine:.4f}")
    if verdict.accuracy is not None:
        parts.append(f"accuracy {verdict.accuracy.converted:.2%} (source {verdict.accuracy.source:.2%})")
    parts.append("passes" if verdict.passed else "FAILS: " + "; ".join(verdict.problems))
    return ", ".join(parts)


def suspects_line(suspects: Any) -> str:
    return f"suspect layers (channel error >= {defaults.SUSPECT_ERROR:g}): {', '.join(suspects)}"
