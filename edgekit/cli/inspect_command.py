"""`edgekit inspect`: what a bundle or a .tflite holds."""

from pathlib import Path

import typer

from edgekit.cli.output import console, human_bytes, print_json, reports_errors, table


@reports_errors
def inspect(
    path: Path = typer.Argument(..., help="A bundle folder, a bundle .tar.gz or a .tflite file.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show inputs and outputs with their quantization, operators, tensor dtypes and weight bytes."""
    from edgekit.runtime.inspect_model import inspect as inspect_path

    info = inspect_path(path)
    if as_json:
        print_json(info.to_dict())
        return
    out = console()
    out.print(
        f"{info.path}: {human_bytes(info.bytes)}, weights {human_bytes(info.weight_bytes)} "
        f"({', '.join(f'{k} {human_bytes(v)}' for k, v in info.weight_dtypes.items())})"
    )
    rows = [
        [
            kind,
            t.name,
            t.shape,
            t.dtype,
            "-" if t.scale is None else f"{t.scale:.6g}",
            "-" if t.zero_point is None else t.zero_point,
        ]
        for kind, tensors in (("input", info.inputs), ("output", info.outputs))
        for t in tensors
    ]
    out.print(table("tensors", ["", "name", "shape", "dtype", "scale", "zero point"], rows))
    out.print(table("operators", ["operator", "count"], list(info.operators.items()), right=("count",)))
    out.print(table("tensor dtypes", ["dtype", "count"], list(info.tensor_dtypes.items()), right=("count",)))
    if info.manifest:
        m = info.manifest
        out.print(
            f"manifest: schema {m['schema']}, {m['name']} for {m['target'].get('name')} "
            f"({m['quantization']}), created by {m['created_by']}, preprocess {m['preprocess']}"
        )
