"""`edgekit convert`: a trained model → one bundle per target."""

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.output import (
    StepProgress,
    console,
    fail,
    human_bytes,
    print_json,
    reports_errors,
    split_values,
    table,
)


def split_names(values: Optional[List[str]]) -> List[str]:
    """`--keep-float a,b` or `--keep-float a --keep-float b`."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


@reports_errors
def convert(
    model: Path = typer.Argument(
        ...,
        help="A Keras 3 .keras file, a legacy .h5, a SavedModel folder, or an existing .tflite (bundled as it is).",
        show_default=False,
    ),
    target: Optional[List[str]] = typer.Option(
        None, "-t", "--target", help="Target profile (repeatable). Default: every profile."
    ),
    quantize: Optional[str] = typer.Option(
        None,
        "-q",
        "--quantize",
        help="float32, dynamic, float16, int8, int16x8 (accuracy, not speed), or auto: per target, the fastest mode "
        "that passes the checks, timed on this machine. Default: each target's mode.",
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
    eval_data: Optional[Path] = typer.Option(
        None,
        "--eval-data",
        help="Verification data instead of the calibration inputs: a folder with one subfolder of images per class, or a .npz with x and y. With labels, top-1 accuracy of the source and of every converted mode is measured.",
    ),
    eval_size: int = typer.Option(500, "--eval-size", min=1, help="How many evaluation samples to use."),
    max_accuracy_drop: Optional[float] = typer.Option(
        None,
        "--max-accuracy-drop",
        help="Fail (exit 4, nothing written) when a bundle loses more top-1 accuracy than this, in percentage points. Needs labelled --eval-data. With -q auto the default is 1.",
    ),
    min_agreement: float = typer.Option(
        0.9, "--min-agreement", help="Fail (exit 4) when a classifier's top-1 answers agree with the source less often."
    ),
    min_cosine: float = typer.Option(
        0.98, "--min-cosine", help="Fail (exit 4) when outputs' mean cosine similarity with the source is lower."
    ),
    allow_degraded: bool = typer.Option(
        False, "--allow-degraded", help="Write bundles that miss the thresholds anyway (their manifests say so)."
    ),
    keep_float: Optional[List[str]] = typer.Option(
        None,
        "--keep-float",
        help="int8 with these layers kept in float (repeatable or comma-separated; names from edgekit debug).",
    ),
    auto_keep_float: bool = typer.Option(
        False, "--auto-keep-float", help="int8 with its worst layers in float, as few as it takes to pass the checks."
    ),
    explain: bool = typer.Option(
        False, "--explain", help="Add the int8 layer-by-layer error report (as edgekit debug)."
    ),
    prune: Optional[float] = typer.Option(
        None,
        "--prune",
        help="Magnitude pruning for a smaller archive: zero this share (e.g. 0.5) of the weights of every Conv/Dense kernel, smallest first. The first and last layers and small kernels stay dense.",
    ),
    prune_channels: Optional[float] = typer.Option(
        None,
        "--prune-channels",
        help="Channel pruning for a faster model: remove this share (e.g. 0.3) of each Conv layer's filters, weakest first, and rebuild the model narrower.",
    ),
    prune_skip: Optional[List[str]] = typer.Option(
        None, "--prune-skip", help="Layers to leave unpruned (repeatable or comma-separated)."
    ),
    prune_include: Optional[List[str]] = typer.Option(
        None, "--prune-include", help="Layers --prune leaves dense by default (first, last, small) to prune anyway."
    ),
    prune_block: Optional[int] = typer.Option(
        None,
        "--prune-block",
        min=1,
        help="--prune zeroes blocks of N consecutive input channels (compresses better). Default: 4 with --finetune-data, 1 without.",
    ),
    prune_norm: str = typer.Option("l1", "--prune-norm", help="Filter importance for --prune-channels: l1 or l2."),
    prune_channels_multiple: int = typer.Option(
        8,
        "--prune-channels-multiple",
        min=1,
        help="Round the channels each layer keeps to a multiple of this (SIMD kernels work in packs); 1: exact counts.",
    ),
    finetune_data: Optional[Path] = typer.Option(
        None,
        "--finetune-data",
        help="Labelled training data (a .npz with x and y, or a folder per class): prune gradually while fine-tuning. Without it pruning is one-shot.",
    ),
    finetune_epochs: Optional[int] = typer.Option(
        None, "--finetune-epochs", min=1, help="Fine-tuning epochs. Default 4."
    ),
    finetune_lr: Optional[float] = typer.Option(
        None, "--finetune-lr", help="Fine-tuning learning rate (Adam). Default 2e-4."
    ),
    unsafe_load: bool = typer.Option(
        False,
        "--unsafe-load",
        help="Load Keras files that carry Python code (Lambda layers, custom objects); refused by default because loading runs that code. Only for files you trust.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show TensorFlow's own log output."),
) -> None:
    """Convert a trained model to TFLite and write one bundle per target.

    Preprocessing is part of the bundle: images are resized to the input size, converted to
    greyscale or RGB by the input's channel count, then x = (pixel - mean) / std.

    Every conversion is run with the device's interpreter on the verification data (--eval-data, else
    the calibration inputs) and compared with the source model; a bundle that misses --min-agreement,
    --min-cosine or --max-accuracy-drop is refused with exit code 4 and nothing is written, unless
    --allow-degraded.
    """
    from edgekit.conversion.pipeline import convert as run_conversion
    from edgekit.conversion.prune import PruneSettings

    if (finetune_epochs is not None or finetune_lr is not None) and finetune_data is None:
        raise fail("error: --finetune-epochs and --finetune-lr need --finetune-data", 2)
    tuning = {"epochs": finetune_epochs, "learning_rate": finetune_lr}
    prune_settings = PruneSettings(
        sparsity=prune,
        channels=prune_channels,
        skip=tuple(split_names(prune_skip)),
        include=tuple(split_names(prune_include)),
        block=prune_block,
        norm=prune_norm,
        multiple=prune_channels_multiple,
        **{key: value for key, value in tuning.items() if value is not None},
    )

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
            eval_data=eval_data,
            eval_size=eval_size,
            max_accuracy_drop=max_accuracy_drop,
            min_agreement=min_agreement,
            min_cosine=min_cosine,
            allow_degraded=allow_degraded,
            keep_float=split_names(keep_float),
            auto_keep_float=auto_keep_float,
            explain=explain,
            unsafe_load=unsafe_load,
            prune=prune_settings,
            finetune_data=finetune_data,
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
                b.mode + (" (mixed)" if b.keep_float else ""),
                human_bytes(b.bytes),
                "-" if b.size_ratio is None else f"{b.size_ratio:.2f}",
                f"{b.conversion_seconds:.2f}",
                "-" if agreement is None else f"{agreement:.3f}",
                f"{b.fidelity.cosine:.5f}",
                "-" if b.accuracy is None else f"{b.accuracy.converted:.2%}",
                b.archive or b.path,
            ]
        )
    columns = [
        "target",
        "arch",
        "mode",
        "size",
        "vs float32",
        "convert s",
        "top-1 agree",
        "cosine",
        "accuracy",
        "bundle",
    ]
    console().print(
        table(
            f"{report.name}: {len(report.bundles)} bundle(s)",
            columns,
            rows,
            right=("size", "vs float32", "convert s", "top-1 agree", "cosine", "accuracy"),
        )
    )
    render_checks(report)
    if report.pruning is not None:
        render_pruning(report.pruning)


def render_checks(report) -> None:
    """What the checks found: accuracy, auto's candidates, mixed int8, the layer report, notes."""
    from edgekit.cli.debug_command import layer_table, mixed_line

    out = console()
    verification = report.verification
    if verification.get("source_accuracy") is not None:
        out.print(
            f"source accuracy {verification['source_accuracy']:.2%} on {verification['samples']} labelled samples "
            f"({verification['data']})"
        )
    for b in report.bundles:
        if b.candidates is None:
            continue
        rows = [
            [
                c.mode,
                human_bytes(c.bytes),
                "-" if c.accuracy is None else f"{c.accuracy:.2%}",
                "-" if c.agreement is None else f"{c.agreement:.3f}",
                "-" if c.p50_ms is None else f"{c.p50_ms:.3f}",
                "-" if c.p99_ms is None else f"{c.p99_ms:.3f}",
                "yes" if c.chosen else "",
                c.reason,
            ]
            for c in b.candidates
        ]
        threads = b.candidates[0].threads if b.candidates else "-"
        out.print(
            table(
                f"{b.target}: candidates, timed on this machine with {threads} thread(s)",
                ["mode", "size", "accuracy", "agreement", "p50 ms", "p99 ms", "chosen", "why"],
                rows,
                right=("size", "accuracy", "agreement", "p50 ms", "p99 ms"),
            )
        )
    if report.keep_float is not None:
        result = report.keep_float
        out.print(mixed_line("int8", result.int8))
        for step in result.steps:
            out.print(mixed_line(f"keep {', '.join(step.layers)} in float", step))
        if result.chosen.layers:
            kept = ", ".join(result.chosen.float_layers or result.chosen.layers)
            out.print(mixed_line(f"bundled: int8 with {kept} in float", result.chosen))
        else:
            out.print("int8 passes the checks as it is: nothing kept in float")
    if report.explain is not None:
        out.print(layer_table(report.explain.layers, 10, "int8 error per layer, worst first (edgekit debug has more)"))
        if report.keep_float is None and report.explain.int8 is not None:
            out.print(mixed_line("int8", report.explain.int8))
        if report.explain.suspects:
            out.print(f"suspect layers (channel error >= 0.2): {', '.join(report.explain.suspects)}")
    for b in report.bundles:
        if b.degraded:
            out.print(f"DEGRADED {b.target} ({b.mode}): {'; '.join(b.problems)}")
    for note in report.notes:
        out.print(f"note: {note}")


def render_pruning(pruning) -> None:
    """What pruning did (per layer) and what it bought (pruned beside unpruned, per mode)."""
    out = console()
    if pruning.magnitude is not None:
        magnitude = pruning.magnitude
        rows = [
            [layer.name, layer.kind, layer.weights, f"{layer.sparsity:.1%}", layer.skipped or ""]
            for layer in magnitude.layers
        ]
        title = f"magnitude pruning to {magnitude.target:.0%} (blocks of {magnitude.block}), {pruning.method}"
        out.print(
            table(title, ["layer", "kind", "weights", "zeros", "left dense because"], rows, right=("weights", "zeros"))
        )
    if pruning.channels is not None:
        channels = pruning.channels
        rows = [
            [layer.name, layer.filters, layer.kept, ", ".join(layer.tied_with), layer.kept_all_because or ""]
            for layer in channels.layers
        ]
        title = f"channel pruning {channels.ratio:.0%} by {channels.norm} norm, {pruning.method}: {channels.removed_share:.1%} of filters removed"
        out.print(
            table(title, ["conv", "filters", "kept", "tied with", "kept all because"], rows, right=("filters", "kept"))
        )
        if channels.compensated:
            out.print(f"removed channels' mean activations moved into: {', '.join(channels.compensated)}")
    if pruning.fine_tuning is not None:
        tuning = pruning.fine_tuning
        out.print(
            f"fine-tuned {tuning.epochs} epoch(s) on {tuning.samples} samples in {tuning.seconds:.1f} s (final loss {tuning.loss} {tuning.final_loss:.4f})"
        )
    else:
        out.print("one-shot pruning (no --finetune-data): nothing was retrained")
    if pruning.float_accuracy:
        steps = ", ".join(f"{name.replace('_', '-')} {value:.2%}" for name, value in pruning.float_accuracy.items())
        out.print(f"Keras model accuracy: {steps}")
    if pruning.comparisons:
        out.print("the checks above compare each conversion with the pruned model; below, with the unpruned one")
    for c in pruning.comparisons:
        u, p = c.unpruned, c.pruned
        rows = [
            ["MACs", f"{u.macs:,}", f"{p.macs:,}", f"{c.macs_ratio:.2f}x"],
            [
                ".tflite",
                human_bytes(u.tflite_bytes),
                human_bytes(p.tflite_bytes),
                f"{p.tflite_bytes / u.tflite_bytes:.2f}x",
            ],
            ["gzip'd (as in .tar.gz)", human_bytes(u.gzip_bytes), human_bytes(p.gzip_bytes), f"-{c.gzip_saving:.1%}"],
            ["zeros in weights", f"{u.weight_sparsity:.1%}", f"{p.weight_sparsity:.1%}", ""],
            ["p50 ms", f"{u.p50_ms:.4f}", f"{p.p50_ms:.4f}", f"{c.speedup:.2f}x speed"],
        ]
        if u.accuracy is not None and p.accuracy is not None:
            rows.append(
                ["accuracy", f"{u.accuracy:.2%}", f"{p.accuracy:.2%}", f"{(p.accuracy - u.accuracy) * 100:+.2f} pts"]
            )
        title = f"{c.mode}: unpruned vs pruned, same run, {c.threads} thread(s) on this machine"
        out.print(table(title, ["", "unpruned", "pruned", "change"], rows, right=("unpruned", "pruned", "change")))
