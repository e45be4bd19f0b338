"""What is inside a `.tflite` model or a bundle: tensors, quantization, operators, weight bytes."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import MANIFEST_NAME, TensorSpec, open_bundle
from edgekit.errors import InputError
from edgekit.runtime.interpreter import check_tflite_file, find_runtime, ops_details
from edgekit.runtime.interpreter import tensor_spec as tensor_spec  # re-exported for old callers


@dataclass(frozen=True)
class ModelInfo:
    """The structure of one `.tflite` model, and the bundle manifest when it came in a bundle."""

    path: str
    bytes: int
    runtime: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    operators: dict[str, int]
    tensor_dtypes: dict[str, int]
    weight_bytes: int
    weight_dtypes: dict[str, int]
    manifest: dict[str, Any] | None = None

    @property
    def schema(self) -> int | None:
        """The bundle's manifest schema (None for a bare `.tflite`)."""
        return None if self.manifest is None else self.manifest.get("schema")

    @property
    def task(self) -> str | None:
        """The bundle's task (classify, detect, segment, raw; None for a bare `.tflite`)."""
        return None if self.manifest is None else self.manifest.get("task")

    @property
    def recipe(self) -> dict[str, Any] | None:
        """The conversion recipe the bundle records (None for a bare `.tflite` or a bundle made before
        recipes were recorded)."""
        conversion = (self.manifest or {}).get("conversion")
        recipe = conversion.get("recipe") if isinstance(conversion, dict) else None
        return recipe if isinstance(recipe, dict) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "bytes": self.bytes,
            "runtime": self.runtime,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "operators": dict(self.operators),
            "tensor_dtypes": dict(self.tensor_dtypes),
            "weight_bytes": self.weight_bytes,
            "weight_dtypes": dict(self.weight_dtypes),
            "schema": self.schema,
            "task": self.task,
            "recipe": self.recipe,
            "manifest": self.manifest,
        }


def plain_interpreter(model_path: Path) -> Any:
    """An interpreter without default delegates, so the operator list shows the real graph."""
    runtime = find_runtime()
    module = __import__(runtime.interpreter_class.__module__, fromlist=["OpResolverType"])
    resolver = getattr(module, "OpResolverType", None)
    try:
        if resolver is not None:
            return runtime.interpreter_class(
                model_path=str(model_path), experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        return runtime.interpreter_class(model_path=str(model_path))
    except (ValueError, RuntimeError) as exc:
        raise InputError(
            f"{model_path}: not a TFLite model this runtime can read ({' '.join(str(exc).split())})"
        ) from None


def inspect_tflite(model_path: Path, manifest: dict[str, Any] | None = None) -> ModelInfo:
    if not model_path.is_file():
        raise InputError(f"{model_path}: no such file")
    check_tflite_file(model_path)
    interpreter = plain_interpreter(model_path)
    ops = ops_details(interpreter)
    details = interpreter.get_tensor_details()
    produced = {int(i) for op in ops for i in op["outputs"]}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    consumed = {int(i) for op in ops for i in op["inputs"] if int(i) >= 0}
    constants = consumed - produced - graph_inputs
    weight_dtypes: Counter[str] = Counter()
    weight_bytes = 0
    by_index = {int(d["index"]): d for d in details}
    for index in constants:
        detail = by_index.get(index)
        if detail is None:
            continue
        dtype = np.dtype(detail["dtype"])
        size = int(np.prod(detail["shape"])) * dtype.itemsize
        weight_bytes += size
        weight_dtypes[dtype.name] += size
    return ModelInfo(
        path=str(model_path),
        bytes=model_path.stat().st_size,
        runtime=find_runtime().name,
        inputs=tuple(tensor_spec(d) for d in interpreter.get_input_details()),
        outputs=tuple(tensor_spec(d) for d in interpreter.get_output_details()),
        operators=dict(Counter(op["op_name"] for op in ops).most_common()),
        tensor_dtypes=dict(Counter(np.dtype(d["dtype"]).name for d in details).most_common()),
        weight_bytes=weight_bytes,
        weight_dtypes=dict(weight_dtypes.most_common()),
        manifest=manifest,
    )


def inspect(path: str | os.PathLike[str]) -> ModelInfo:
    """Inspect a bundle (folder or `.tar.gz`) or a bare `.tflite` file."""
    source = Path(path)
    if source.is_file() and source.suffix == ".tflite":
        return inspect_tflite(source)
    if source.is_dir() and not (source / MANIFEST_NAME).exists() and source.suffix == ".tflite":
        raise InputError(f"{source}: is a folder, not a .tflite file")
    with open_bundle(source) as bundle:
        manifest = bundle.manifest
        info = inspect_tflite(bundle.model_path, manifest=manifest.to_dict())
        return dataclasses.replace(
            info,
            path=str(source),
            inputs=_as_listed(info.inputs, manifest.inputs),
            outputs=_as_listed(info.outputs, manifest.outputs),
        )


def _as_listed(actual: tuple[TensorSpec, ...], listed: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    """The model's tensors under the manifest's names, with their preprocessing and labels (the shapes,
    dtypes and quantization stay the model's own: inspect shows what is there)."""
    if len(actual) != len(listed):
        return actual
    return tuple(
        dataclasses.replace(tensor, name=spec.name, preprocess=spec.preprocess, labels=spec.labels)
        for tensor, spec in zip(actual, listed)
    )
