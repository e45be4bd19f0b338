"""What `edgekit convert` prints: the bundles, what the checks found, and what pruning bought."""

from __future__ import annotations

from typing import Any

from edgekit.cli.output import console, human_bytes, print_json, table


def render(report: Any, as_json: bool) -> None:
    """The report as JSON, or as tables."""
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
    render_outputs(report)
    render_checks(report)
    if report.pruning is not None:
        render_pruning(report.pruning)


def render_outputs(report) -> None:
    """With several outputs: every output's figures per bundle, the worst one marked."""
    bundles = [b for b in report.bundles if len(b.fidelities) > 1]
    if not bundles:
        return
    rows = []
    for b in bundles:
        worst = b.fidelity.output
        for f in b.fidelities:
            accuracy = b.accuracies.get(f.output)
            rows.append(
                [
                    b.target,
                    b.mode,
                    f.output + (" (worst)" if f.output == worst else ""),
                    f"{f.cosine:.5f}",
                    "-" if f.channel_error is None else f"{f.channel_error:.4f} (#{f.worst_channel})",
                    f"{f.max_abs_error:.4g}",
                    f"{f.mean_abs_error:.4g}",
                    "-" if f.top1_agreement is None else f"{f.top1_agreement:.3f}",
                    "-" if f.box_match is None else f"{f.box_match:.3f}",
                    "-" if accuracy is None else f"{accuracy.converted:.2%}",
                    "float" if f.output in b.float_outputs else "",
                ]
            )
    columns = ["target", "mode", "output", "cosine", "channel error", "max abs", "mean abs", "top-1", "boxes"]
    right = ("cosine", "channel error", "max abs", "mean abs", "top-1", "boxes", "accuracy")
    console().print(table(f"{report.name} ({report.task}): every output", [*columns, "accuracy", "kept"], rows, right))


def render_checks(report) -> None:
    """What the checks found: accuracy, auto's candidates, mixed int8, the layer report, notes."""
    from edgekit.cli.debug_command import layer_table, mixed_line, suspects_line

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
    if report.float_outputs is not None:
        kept = report.float_outputs
        out.print(mixed_line("int8", kept.int8))
        out.print(mixed_line(f"int8 with output(s) {', '.join(kept.outputs)} in float", kept.model))
    if report.explain is not None:
        out.print(layer_table(report.explain.layers, 10, "int8 error per layer, worst first (edgekit debug has more)"))
        if report.keep_float is None and report.explain.int8 is not None:
            out.print(mixed_line("int8", report.explain.int8))
        if report.explain.suspects:
            out.print(suspects_line(report.explain.suspects))
    for b in report.bundles:
        if b.degraded:
            out.print(f"DEGRADED {b.target} ({b.mode}): {'; '.join(b.problems)}")
    references = {b.fidelity.reference for b in report.bundles} - {"source", "self"}
    if references:  # an ONNX model's outputs come from onnxruntime, not from the converter's float graph
        out.print(f"checked against {', '.join(sorted(references))} on the original model")
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
