"""An ONNX file read and made ready for onnx2tf, before any TensorFlow: what it takes and answers,
the ops and data types nothing downstream can convert (refused with the op and the node named),
dynamic dimensions fixed from `--input-shape`, and node names TensorFlow's scopes accept.

Everything here works on the `onnx` package alone, so a refusal costs no TensorFlow import."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from edgekit.errors import ConversionError, InputError, UsageError

# onnx2tf, tf-keras and onnxsim come without their dependencies: their pins would replace TensorFlow 2.21.
INSTALL_HINT = (
    "pip install 'edgekit[convert,onnx]' && pip install --no-deps onnx2tf==1.29.24 tf-keras==2.21.0 onnxsim==0.4.36"
)
# ONNX element types a float TFLite model can be made from; anything else (strings, complex numbers,
# bfloat16, 8-bit floats) has no TFLite kernel to run on.
CONVERTIBLE_TYPES = {
    "FLOAT", "FLOAT16", "DOUBLE", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BOOL",
}  # fmt: skip
# Scopes TensorFlow accepts for op names (tf.name_scope); anything else (PaddleOCR's `@`, `:`) breaks
# onnx2tf, so such names are rewritten before it sees them.
TF_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")


@dataclass(frozen=True)
class OnnxTensor:
    """A graph input or output as the ONNX file names it: its shape (None for a dynamic dimension, with
    the dimension's name in `dim_names`) and its element type."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    dim_names: tuple[str, ...] = ()

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.shape) if d is None)

    def describe_dynamic(self) -> str:
        return ", ".join(f"{self.dim_names[i] or '?'} (axis {i})" for i in self.dynamic_axes)


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise InputError(f"ONNX support is not installed: {INSTALL_HINT}") from None
    return onnx


def read_model(path: Path) -> Any:
    """The ModelProto of `path`, with external data loaded; a file that is no ONNX model is an InputError."""
    onnx = import_onnx()
    try:
        return onnx.load(str(path))
    except Exception as exc:  # DecodeError, OSError, ValueError: all mean "not a readable ONNX file"
        raise InputError(f"{path}: not a readable ONNX model ({' '.join(str(exc).split())[:200]})") from None


def graph_tensors(model: Any) -> tuple[tuple[OnnxTensor, ...], tuple[OnnxTensor, ...]]:
    """The graph's real inputs (initializers listed as inputs by old exporters left out) and outputs."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = tuple(_tensor(v) for v in model.graph.input if v.name not in initializers)
    return inputs, tuple(_tensor(v) for v in model.graph.output)


def _tensor(value: Any) -> OnnxTensor:
    onnx = import_onnx()
    kind = value.type.tensor_type
    dims = kind.shape.dim if kind.HasField("shape") else []
    shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
    names = tuple(d.dim_param if d.HasField("dim_param") else "" for d in dims)
    return OnnxTensor(value.name, shape, onnx.TensorProto.DataType.Name(kind.elem_type), names)


def check_convertible(model: Any, path: Path, known_ops: frozenset[str], converter: str) -> None:
    """Refuse, naming the op and the node, what no TFLite model can be made from: ops of a custom
    domain, standard ops `converter` has no conversion for, and unsupported element types."""
    onnx = import_onnx()
    for node in _all_nodes(model.graph):
        where = f"node {node.name or '(unnamed)'!r}"
        if node.domain not in ("", "ai.onnx"):
            raise ConversionError(
                f"{path}: custom op {node.domain}.{node.op_type} ({where}) cannot be converted: TFLite has no "
                "kernel for it; export the model without custom ops"
            )
        if node.op_type not in known_ops:
            raise ConversionError(
                f"{path}: op {node.op_type} ({where}) cannot be converted ({converter} has no conversion for it)"
            )
    for tensor in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        if name not in CONVERTIBLE_TYPES:
            user = next((n for n in _all_nodes(model.graph) if tensor.name in n.input), None)
            at = f"op {user.op_type} (node {user.name!r})" if user else f"weight {tensor.name!r}"
            raise ConversionError(f"{path}: {at} uses data type {name}, which TFLite cannot run")
    inputs, outputs = graph_tensors(model)
    for tensor in (*inputs, *outputs):
        if tensor.dtype not in ("FLOAT", "FLOAT16", "DOUBLE"):
            side = "input" if tensor in inputs else "output"
            raise ConversionError(
                f"{path}: {side} {tensor.name!r} has data type {tensor.dtype}; edgekit converts ONNX models "
                "whose inputs and outputs are floating point"
            )


def _all_nodes(graph: Any) -> list[Any]:
    """Every node, those of subgraphs (If, Loop, Scan bodies) included."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attribute in node.attribute:
            for sub in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                nodes.extend(_all_nodes(sub))
    return nodes


def parse_input_shapes(specs: Sequence[str] | Mapping[str, Sequence[int]] | None) -> dict[str | None, tuple[int, ...]]:
    """`--input-shape` values (`1,3,320,320` for a model's only input, `NAME=1,3,320,320` per input) or a
    dict name → shape, as name → shape; the unnamed one is under None."""
    if not specs:
        return {}
    if isinstance(specs, Mapping):
        return {name: _dims(shape, f"input_shapes[{name!r}]") for name, shape in specs.items()}
    shapes: dict[str | None, tuple[int, ...]] = {}
    for spec in specs:
        name, _, dims = str(spec).rpartition("=")
        key = name.strip() or None
        if key in shapes:
            raise UsageError(f"--input-shape given twice for {'the input' if key is None else repr(key)}")
        shapes[key] = _dims(dims.replace("x", ",").split(","), f"--input-shape {spec!r}")
    if None in shapes and len(shapes) > 1:
        raise UsageError("--input-shape: name every input (NAME=1,3,320,320) when giving several")
    return shapes


def _dims(values: Sequence[Any], where: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(str(v).strip()) for v in values)
    except ValueError:
        raise UsageError(f"{where}: expected comma-separated positive integers, like 1,3,320,320") from None
    if not dims or any(d < 1 for d in dims):
        raise UsageError(f"{where}: expected comma-separated positive integers, like 1,3,320,320")
    return dims


def fixed_shapes(
    inputs: Sequence[OnnxTensor], given: Mapping[str | None, tuple[int, ...]], path: Path
) -> dict[str, tuple[int, ...]]:
    """Every input's shape with its dynamic dimensions fixed: from `given` (`--input-shape`), else a
    dynamic batch (axis 0) alone becomes 1, as for Keras models; any other dynamic dimension is refused
    with the input and its dimensions named."""
    names = [t.name for t in inputs]
    if None in given:
        if len(inputs) != 1:
            raise UsageError(f"{path}: the model has inputs {', '.join(names)}: give --input-shape NAME=... for each")
        given = {inputs[0].name: given[None]}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise UsageError(f"--input-shape: the model has no input {unknown[0]!r} (its inputs: {', '.join(names)})")
    shapes = {}
    for tensor in inputs:
        shape = given.get(tensor.name)
        if shape is not None:
            if len(shape) != len(tensor.shape) or any(d is not None and d != s for d, s in zip(tensor.shape, shape)):
                model = ",".join("?" if d is None else str(d) for d in tensor.shape)
                raise UsageError(
                    f"--input-shape {','.join(map(str, shape))} does not fit input {tensor.name!r} of shape ({model})"
                )
        elif tensor.dynamic_axes and tensor.dynamic_axes != (0,):
            hint = ",".join(
                "N" if d is None and i == 0 else "?" if d is None else str(d) for i, d in enumerate(tensor.shape)
            )
            raise InputError(
                f"{path}: input {tensor.name!r} has dynamic dimensions {tensor.describe_dynamic()}: give them with "
                f"--input-shape {tensor.name}={hint.replace('N', '1')}"
            )
        else:
            shape = tuple(1 if d is None else d for d in tensor.shape)
        shapes[tensor.name] = shape
    return shapes


def prepared_for_conversion(model: Any, shapes: Mapping[str, tuple[int, ...]]) -> Any:
    """A copy of `model` ready for onnx2tf: inputs of fixed shape (stale intermediate shapes dropped, so
    shape inference starts from them) and every node name a valid TensorFlow scope."""
    onnx = import_onnx()
    prepared = onnx.ModelProto()
    prepared.CopyFrom(model)
    for value in prepared.graph.input:
        if value.name in shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[value.name]):
                dim.Clear()
                dim.dim_value = size
    del prepared.graph.value_info[:]
    used: set[str] = set()
    for node in _all_nodes(prepared.graph):
        node.name = _scope_name(node.name or node.op_type, used)
    return prepared


def _scope_name(name: str, used: set[str]) -> str:
    """`name` as a TensorFlow scope, unique among `used`."""
    if not TF_NAME.match(name):
        name = re.sub(r"[^A-Za-z0-9_.\\/>-]", "_", name)
        name = name if re.match(r"[A-Za-z0-9.]", name) else f"n{name}"
    return unique_name(name, used)


def unique_name(name: str, used: set[str]) -> str:
    """`name`, or `name_2`, `name_3`, ... : the first not in `used` (which then holds it)."""
    candidate, count = name, 1
    while candidate in used:
        count += 1
        candidate = f"{name}_{count}"
    used.add(candidate)
    return candidate
