"""`edgekit convert`: a trained model → one bundle per target."""

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.output import StepProgress, console, human_bytes, print_json, reports_errors, split_values, table


@reports_errors
def convert(
    model: Path = typer.Argument(..., help="A Keras 3 .keras file or a SavedModel folder.", show_default=False),
    target: Optional[List[str]] = typer.Option(
        None, "-t", "--target", help="Target profile (repeatable). Default: every profile."
    ),
    quantize: Optional[str] = typer.Option(
        None, "-q", "--quantize", help="float32, dynamic, float16 or int8. Default: each target's mode."
    ),
    calibration: Optional[Path] = typer.Option(
        None,
        "--calibration",
        help="Representative inputs for int8 and for the fidelity check: a folder of images, a .npy or a .npz (key x).",
    ),
    calibration_size: int = typer.Option(
        300, "--calibration-size", min=1, help="How many calibration samples to use (spread evenly over the data)."
    ),
    mean: Optional[List[str]] = typer.Option(
        None, "--mean", help="Pixel mean on 0-255 values: one value or one per channel (comma-separated). Default 0."
    ),
    std: Optional[List[str]] = typer.Option(
        None,
        "--std",
        help="Pixel std on 0-255 values: one value or one per channel. Default 255, i.e. inputs in [0, 1].",
    ),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Text file with one class label per line."),
    name: Optional[str] = typer.Option(None, "--name", help="Bundle name. Default: the model file's name."),
    out: Path = typer.Option(Path("bundles"), "--out", "-o", help="Folder that receives NAME-TARGET/ bundles."),
    archive: bool = typer.Option(
        False, "--archive", help="Also write NAME-TARGET.tar.gz, the form a bundle travels in."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing bundles."),
    targets_dir: Optional[Path] = typer.Option(
        None, "--targets-dir", help="Folder with your own target profiles (*.toml)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show TensorFlow's own log output."),
) -> None:
    """Convert a trained model to TFLite and write one bundle per target.

    Preprocessing is part of the bundle: images are resized to the input size, converted to
    greyscale or RGB by the input's channel count, then x = (pixel - mean) / std.
    """
    from edgekit.conversion.pipeline import convert as run_conversion

    with StepProgress(not as_json, "converting") as progress:
        report = run_conversion(
            model,
            targets=target,
            quantization=quantize,
            calibration=calibration,
            calibration_size=calibration_size,
            mean=split_values(mean, "mean"),
            std=split_values(std, "std"),
            labels=labels,
            name=name,
            out=out,
            archive=archive,
            force=force,
            targets_dir=targets_dir,
            verbose=verbose,
            progress=progress,
        )
    if as_json:
        print_json(report.to_dict())
        return
    rows = []
    for b in report.bundles:
        agreement = b.fidelity.top1_agreement
        rows.append(
            [
                b.target,
                b.arch,
                b.mode,
                human_bytes(b.bytes),
                f"{b.size_ratio:.2f}",
                f"{b.conversion_seconds:.2f}",
                "-" if agreement is None else f"{agreement:.3f}",
                f"{b.fidelity.cosine:.5f}",
                b.archive or b.path,
            ]
        )
    columns = ["target", "arch", "mode", "size", "vs float32", "convert s", "top-1 agree", "cosine", "bundle"]
    console().print(
        table(
            f"{report.name}: {len(report.bundles)} bundle(s)",
            columns,
            rows,
            right=("size", "vs float32", "convert s", "top-1 agree", "cosine"),
        )
    )
    if report.bundles and report.bundles[0].fidelity.synthetic:
        console().print("fidelity measured on random inputs (no --calibration data given)")
