"""`edgekit convert`: a trained model → one bundle per target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgekit import defaults
from edgekit.cli.convert_report import render
from edgekit.cli.options import (
    PATH,
    Command,
    argument,
    calibration_option,
    eval_data_option,
    json_option,
    labels_option,
    names_option,
    option,
    size_option,
    split_names,
    targets_dir_option,
    threshold_options,
    unsafe_load_option,
    verbose_option,
)
from edgekit.cli.output import python_warnings, reports_errors
from edgekit.cli.progress_bar import ProgressBar


def _split_items(ctx: click.Context, param: click.Parameter, values: Any) -> list[str]:
    return split_names(values)


def _channel_values(ctx: click.Context, param: click.Parameter, values: Any) -> list[Any] | None:
    """`--mean 127.5`, `--mean 123.7,116.3,103.5`, or `--mean image=127.5 --mean depth=0.5` per input."""
    result: list[Any] = []
    for value in values:
        if "=" in value:
            result.append(value.strip())
            continue
        for part in split_names([value]):
            try:
                result.append(float(part))
            except ValueError:
                raise click.BadParameter(f"{part!r} is not a number (or NAME=VALUES)") from None
    return result or None


def channel_values_option(name: str, help: str) -> Any:
    return option(
        name, multiple=True, metavar="X[,X...]|NAME=X[,X...]", callback=_channel_values, help=help, panel=INPUTS
    )


INPUTS, QUANTIZATION, CHECKS, PRUNING, OUTPUT = (
    "Inputs and preprocessing",
    "Targets and quantization",
    "Checks",
    "Pruning",
    "Output",
)


@click.command("convert", cls=Command, default_panel=OUTPUT)
@argument(
    "model",
    "MODEL",
    "A Keras 3 .keras file, a legacy .h5, a SavedModel folder, an ONNX .onnx (PyTorch's export), or an existing "
    ".tflite (bundled as it is).",
)
@option(
    "--recipe",
    type=PATH,
    metavar="FILE",
    panel=INPUTS,
    help="Conversion options as a JSON or TOML file (as `edgekit inspect` shows a bundle's); flags given here override it.",
)
@calibration_option(
    "Representative inputs for int8 and for the fidelity check: a folder of images, a .npy or a .npz (key x).",
    panel=INPUTS,
)
@size_option(
    "--calibration-size",
    defaults.CALIBRATION_SIZE,
    "How many calibration samples to use (spread evenly over the data).",
    panel=INPUTS,
)
@channel_values_option(
    "--mean",
    f"Pixel mean on 0-255 values: one value or one per channel (comma-separated). Default {defaults.MEAN:g}. "
    "With several image inputs: NAME=VALUES, repeated per input.",
)
@channel_values_option(
    "--std",
    f"Pixel std on 0-255 values: one value or one per channel. Default {defaults.STD:g}, i.e. inputs in [0, 1]. "
    "With several image inputs: NAME=VALUES.",
)
@labels_option("Text file with one class label per line.", panel=INPUTS)
@eval_data_option(
    "Verification data instead of the calibration inputs: a folder with one subfolder of images per class, or a .npz with x and y. With labels, top-1 accuracy of the source and of every converted mode is measured.",
    panel=INPUTS,
)
@size_option("--eval-size", defaults.EVAL_SIZE, "How many evaluation samples to use.", panel=INPUTS)
@unsafe_load_option(
    "Load Keras files that carry Python code (Lambda layers, custom objects); refused by default because loading runs that code. Only for files you trust.",
    panel=INPUTS,
)
@option(
    "--input-shape",
    multiple=True,
    metavar="[NAME=]1,3,H,W",
    panel=INPUTS,
    help="ONNX models with dynamic dimensions: the shape to convert for, e.g. 1,3,320,320 (the only input) or "
    "images=1,3,320,320 (repeatable, one per input). A dynamic batch alone becomes 1.",
)
@option(
    "-t",
    "--target",
    multiple=True,
    metavar="NAME",
    panel=QUANTIZATION,
    help="Target profile (repeatable). Default: every profile.",
)
@option(
    "-q",
    "--quantize",
    metavar="MODE",
    panel=QUANTIZATION,
    help="float32, dynamic, float16, int8, int16x8 (accuracy, not speed), or auto: per target, the fastest mode "
    "that passes the checks, timed on this machine. Default: each target's mode.",
)
@targets_dir_option("Folder with your own target profiles (*.toml).", panel=QUANTIZATION)
@names_option(
    "--keep-float",
    "int8 with these layers kept in float (repeatable or comma-separated; names from edgekit debug).",
    panel=QUANTIZATION,
)
@option(
    "--auto-keep-float",
    is_flag=True,
    panel=QUANTIZATION,
    help="int8 with its worst layers in float, as few as it takes to pass the checks.",
)
@names_option(
    "--float-outputs",
    "int8 with these outputs (model output names) computed and returned in float, e.g. a head that packs boxes "
    "in pixels beside 0-1 scores. --auto-keep-float does it by itself for an output that fails its check.",
    panel=QUANTIZATION,
)
@option(
    "--task",
    type=click.Choice(["classify", "detect", "segment", "raw"]),
    panel=INPUTS,
    help="What the model does, recorded in the bundle for `edgekit run`. Default: inferred where unambiguous "
    "(one class-score output: classify; TFLite_Detection_PostProcess's four outputs or a YOLO head: detect), else raw.",
)
@option(
    "--on",
    metavar="HOST",
    panel=QUANTIZATION,
    help="With -q auto: time the candidate modes on this device over SSH ([user@]host[:port] or a name from "
    "your SSH config) instead of on this machine, at the target's thread count.",
)
@option(
    "--ssh-config", type=click.Path(path_type=str), metavar="FILE", panel=QUANTIZATION, help="With --on: ssh -F FILE."
)
@option("--remote-python", metavar="PATH", panel=QUANTIZATION, help="With --on: the device's Python.")
@option(
    "--explain", is_flag=True, panel=QUANTIZATION, help="Add the int8 layer-by-layer error report (as edgekit debug)."
)
@threshold_options(panel=CHECKS)
@option(
    "--max-channel-error",
    type=click.FloatRange(min=0),
    default=0.2,
    show_default=True,
    metavar="SHARE",
    panel=CHECKS,
    help="Fail (exit 4) when one channel (last axis) of an output that is not a classifier is off by more than "
    "this share of its values (RMS error / RMS value): scores packed beside boxes in pixels cannot hide.",
)
@option(
    "--min-accuracy",
    multiple=True,
    metavar="PCT|NAME=PCT",
    callback=_split_items,
    panel=CHECKS,
    help="Fail (exit 4, nothing written) when a bundle's top-1 accuracy on labelled --eval-data is below PCT "
    "percent: for every labelled classifier output, or for output NAME (repeatable). Works for every input "
    "format, .tflite included.",
)
@option(
    "--allow-degraded",
    is_flag=True,
    panel=CHECKS,
    help="Write bundles that miss the thresholds anyway (their manifests say so).",
)
@option(
    "--prune",
    type=float,
    metavar="SHARE",
    panel=PRUNING,
    help="Magnitude pruning for a smaller archive: zero this share (e.g. 0.5) of the weights of every Conv/Dense kernel, smallest first. The first and last layers and small kernels stay dense.",
)
@option(
    "--prune-channels",
    type=float,
    metavar="SHARE",
    panel=PRUNING,
    help="Channel pruning for a faster model: remove this share (e.g. 0.3) of each Conv layer's filters, weakest first, and rebuild the model narrower.",
)
@names_option("--prune-skip", "Layers to leave unpruned (repeatable or comma-separated).", panel=PRUNING)
@names_option(
    "--prune-include", "Layers --prune leaves dense by default (first, last, small) to prune anyway.", panel=PRUNING
)
@option(
    "--prune-block",
    type=click.IntRange(min=1),
    metavar="N",
    panel=PRUNING,
    help="--prune zeroes blocks of N consecutive input channels (compresses better). Default: 4 with --finetune-data, 1 without.",
)
@option(
    "--prune-norm",
    default=defaults.PRUNE_NORM,
    show_default=True,
    metavar="l1|l2",
    panel=PRUNING,
    help="Filter importance for --prune-channels: l1 or l2.",
)
@option(
    "--prune-channels-multiple",
    type=click.IntRange(min=1),
    default=defaults.PRUNE_CHANNELS_MULTIPLE,
    show_default=True,
    metavar="N",
    panel=PRUNING,
    help="Round the channels each layer keeps to a multiple of this (SIMD kernels work in packs); 1: exact counts.",
)
@option(
    "--finetune-data",
    type=PATH,
    metavar="DIR|FILE",
    panel=PRUNING,
    help="Labelled training data (a .npz with x and y, or a folder per class): prune gradually while fine-tuning. Without it pruning is one-shot.",
)
@option(
    "--finetune-epochs",
    type=click.IntRange(min=1),
    metavar="N",
    panel=PRUNING,
    help=f"Fine-tuning epochs. Default {defaults.FINETUNE_EPOCHS}.",
)
@option(
    "--finetune-lr",
    type=float,
    metavar="RATE",
    panel=PRUNING,
    help=f"Fine-tuning learning rate (Adam). Default {defaults.FINETUNE_LEARNING_RATE:g}.",
)
@option("--name", metavar="NAME", panel=OUTPUT, help="Bundle name. Default: the model file's name.")
@option(
    "--out",
    "-o",
    type=PATH,
    default=defaults.OUT,
    show_default=True,
    metavar="DIR",
    panel=OUTPUT,
    help="Folder that receives NAME-TARGET/ bundles.",
)
@option("--archive", is_flag=True, panel=OUTPUT, help="Also write NAME-TARGET.tar.gz, the form a bundle travels in.")
@option("--force", is_flag=True, panel=OUTPUT, help="Overwrite existing bundles.")
@json_option(panel=OUTPUT)
@verbose_option(panel=OUTPUT)
@click.pass_context
@reports_errors
def convert(ctx: click.Context, model: Path, recipe: Path | None, **flags: Any) -> None:
    """Convert a trained model to TFLite and write one bundle per target.

    Preprocessing is part of the bundle: images are resized to the input size, converted to
    greyscale or RGB by the input's channel count, then x = (pixel - mean) / std.

    Every conversion is run with the device's interpreter on the verification data (--eval-data, else
    the calibration inputs) and compared with the source model output by output; a bundle that misses
    --min-agreement, --min-cosine, --max-accuracy-drop or --min-accuracy on any output is refused with
    exit code 4 and nothing is written, unless --allow-degraded. A gate that cannot be checked (no
    labels, no source to compare with) is refused with exit code 2.

    Models with several inputs take their data as a .npz with one array per input name (and `y`, or
    `y_<output>` per output, for labels).
    """
    python_warnings(flags["verbose"])
    from edgekit.conversion.pipeline import convert as run_conversion

    # With a recipe only the flags given on the command line override it; without one, every flag
    # (their defaults are the library's own).
    given = {
        key: value for key, value in flags.items() if recipe is None or ctx.get_parameter_source(key) is COMMANDLINE
    }
    options = recipe_fields(given)
    with ProgressBar("converting", enabled=not flags["as_json"]) as progress:
        report = run_conversion(model, recipe, progress=progress, **options)
    render(report, flags["as_json"])


COMMANDLINE = click.core.ParameterSource.COMMANDLINE
# flag name -> the library's (and the recipe's) field name, where they differ
RENAMED = {"target": "targets", "quantize": "quantization"}
NOT_OPTIONS = ("as_json",)


def recipe_fields(flags: dict[str, Any]) -> dict[str, Any]:
    """Flags as the recipe's flat fields (`ConvertOptions`); a repeatable flag not given is None."""
    return {
        RENAMED.get(key, key): (list(value) or None) if isinstance(value, tuple) else value
        for key, value in flags.items()
        if key not in NOT_OPTIONS
    }
