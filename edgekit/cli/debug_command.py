"""`edgekit debug`: where int8 quantization hurts a model, layer by layer, worst first."""

from pathlib import Path
from typing import Any, List, Optional

import typer

from edgekit.cli.output import StepProgress, console, human_bytes, print_json, reports_errors, split_values, table


@reports_errors
def debug(
    model: Path = typer.Argument(
        ..., help="A Keras 3 .keras / legacy .h5 file or a SavedModel folder.", show_default=False
    ),
    calibration: Path = typer.Option(
        ..., "--calibration", help="Representative inputs for int8: a folder of images, a .npy or a .npz (key x)."
    ),
    calibration_size: int = typer.Option(300, "--calibration-size", min=1, help="How many calibration samples to use."),
    mean: Optional[List[str]] = typer.Option(None, "--mean", help="Pixel mean on 0-255 values (as for convert)."),
    std: Optional[List[str]] = typer.Option(None, "--std", help="Pixel std on 0-255 values (as for convert)."),
    eval_data: Optional[Path] = typer.Option(
        None,
        "--eval-data",
        help="Check the int8 model on these inputs instead of the calibration data: a folder per class or a .npz with x and y (labels give accuracy).",
    ),
    eval_size: int = typer.Option(500, "--eval-size", min=1, help="How many evaluation samples to use."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class labels, one per line (maps class folders)."),
    max_accuracy_drop: Optional[float] = typer.Option(
        None, "--max-accuracy-drop", help="Accuracy the int8 model may lose, in percentage points (needs labels)."
    ),
    min_agreement: float = typer.Option(0.9, "--min-agreement", help="Minimum top-1 agreement with the source."),
    min_cosine: float = typer.Option(0.98, "--min-cosine", help="Minimum cosine similarity of outputs."),
    top: int = typer.Option(15, "--top", min=1, help="Layers to show (the JSON has all)."),
    search: bool = typer.Option(
        True, "--search/--no-search", help="When int8 misses the thresholds, search which layers to keep in float."
    ),
    unsafe_load: bool = typer.Option(
        False,
        "--unsafe-load",
        help="Load Keras files that carry Python code (Lambda layers). Only for files you trust.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show TensorFlow's own log output."),
) -> None:
    """Report, layer by layer and worst first, how much error int8 quantization adds (TFLite's
    QuantizationDebugger), and which layers to keep in float when the int8 model misses the thresholds.

    The error of a layer is per channel: RMS error over RMS value, capped at 1, averaged over the
    layer's output channels. 0 is perfect; 1 means every channel rounds to nothing, as happens when a
    few outlier channels stretch the int8 range.
    """
    from edgekit.conversion.debug import debug as run_debug
    from edgekit.conversion.verify import Thresholds

    with StepProgress(not as_json, "debugging int8") as progress:
        steps = iter(range(1, 100))
        report = run_debug(
            model,
            calibration,
            calibration_size=calibration_size,
            mean=split_values(mean, "mean"),
            std=split_values(std, "std"),
            eval_data=eval_data,
            eval_size=eval_size,
            labels=labels,
            thresholds=Thresholds(min_agreement, min_cosine, max_accuracy_drop),
            search=search,
            unsafe_load=unsafe_load,
            verbose=verbose,
            progress=lambda label: progress(label, next(steps), None),
        )
    if as_json:
        print_json(report.to_dict())
        return
    out = console()
    out.print(layer_table(report.layers, top, f"{report.model}: int8 error per layer, worst first"))
    if report.int8 is not None:
        out.print(mixed_line("int8", report.int8))
    if report.suspects:
        out.print(f"suspect layers (channel error >= 0.2): {', '.join(report.suspects)}")
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
