"""`edgekit inspect`: what a bundle or a .tflite holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgekit.cli.options import Command, argument, json_option
from edgekit.cli.output import console, human_bytes, print_json, reports_errors, table


@click.command("inspect", cls=Command)
@argument("path", "BUNDLE|MODEL.tflite", "A bundle folder, a bundle .tar.gz or a .tflite file.")
@json_option("Print as JSON.")
@reports_errors
def inspect(path: Path, as_json: bool) -> None:
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
            describe_extra(t),
        ]
        for kind, tensors in (("input", info.inputs), ("output", info.outputs))
        for t in tensors
    ]
    out.print(table("tensors", ["", "name", "shape", "dtype", "scale", "zero point", "preprocess / labels"], rows))
    out.print(table("operators", ["operator", "count"], list(info.operators.items()), right=("count",)))
    out.print(table("tensor dtypes", ["dtype", "count"], list(info.tensor_dtypes.items()), right=("count",)))
    if info.manifest:
        m = info.manifest
        old = " (edgekit 0.1's format, read as schema 2)" if m["schema"] == 1 else ""
        out.print(
            f"manifest: schema {m['schema']}{old}, {m['name']} for {m['target'].get('name')} "
            f"({m['quantization']}), task {m['task']}, created by {m['created_by']}"
        )
        if m.get("postprocess"):
            out.print(f"postprocess: {show_value(m['postprocess'])}")
    recipe = recipe_of(info)
    if recipe:
        rows = [[key, show_value(value)] for key, value in recipe.items()]
        out.print(table("recipe (edgekit convert --recipe reproduces it)", ["option", "value"], rows))


def recipe_of(info: Any) -> dict[str, Any] | None:
    """The conversion recipe a bundle was made with: the report's `recipe`, else the manifest's record."""
    recipe = getattr(info, "recipe", None)
    if recipe is None and info.manifest:
        recipe = (info.manifest.get("conversion") or {}).get("recipe")
    return recipe.to_dict() if hasattr(recipe, "to_dict") else recipe


def show_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {show_value(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return "-" if value is None else str(value)


def describe_extra(tensor: Any) -> str:
    """An input's preprocessing or an output's labels file, in a table cell."""
    p = getattr(tensor, "preprocess", None)
    if p is not None:
        mean, std = ",".join(f"{v:g}" for v in p.mean), ",".join(f"{v:g}" for v in p.std)
        return f"{p.color} {p.size[0]}x{p.size[1]} {p.layout}, mean {mean}, std {std}"
    labels = getattr(tensor, "labels", None)
    return f"labels {labels}" if labels else "-"
