"""The manifest `edgekit.json`: the bundle's file names, its types, and their validation.

A manifest is untrusted input: `parse_manifest` and `Manifest.from_dict` check it field by field, and
every error names the file and the field (`edgekit.json: outputs[1].scale`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bundle.files import sha256_file
from edgekit.bundle.json_fields import (
    expect,
    is_int,
    is_number,
    numbers,
    plain_file_name,
    refuse_constant,
    refuse_duplicates,
    required,
    short_repr,
)
from edgekit.errors import InputError

# Schema 2 (edgekit 0.2): several inputs and outputs, preprocessing per input, labels per output, tasks
# classify/detect/segment/raw and `postprocess`. Schema 1 manifests (edgekit 0.1) are read as schema 2.
SCHEMA_VERSION = 2
MANIFEST_NAME = "edgekit.json"
MODEL_NAME = "model.tflite"
LABELS_NAME = "labels.txt"
SIGNATURE_NAME = "edgekit.sig"
ARCHIVE_SUFFIX = ".tar.gz"
MAX_MANIFEST_BYTES = 1 << 20
# A manifest lists at most this many files (and an archive holds at most this many members).
MAX_BUNDLE_FILES = 64
COLOR_MODES = ("L", "RGB")
TASKS = ("classify", "detect", "segment", "raw")
# Schema 1's task names, as schema 2 reads them.
SCHEMA_1_TASKS = {"classification": "classify", "generic": "raw"}
LAYOUTS = ("NHWC", "NCHW")
FLOAT_DTYPES = ("float16", "float32", "float64", "complex64")
INTEGER_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "bool")
TENSOR_DTYPES = FLOAT_DTYPES + INTEGER_DTYPES
# No CPU has this many cores; far larger counts make the runtimes' thread pools crash the process.
MAX_THREADS = 256


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of the `.tflite` model, with its quantization when it has one."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None
    preprocess: Preprocess | None = None  # inputs: how an image becomes this input (image-shaped inputs)
    labels: str | None = None  # outputs: a file of the bundle with one class name per line

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8", "int16") and bool(self.scale)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }
        if self.preprocess is not None:
            data["preprocess"] = self.preprocess.to_dict()
        if self.labels is not None:
            data["labels"] = self.labels
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TensorSpec:
        expect(data, dict, where)
        name = required(data, "name", str, where)
        shape = required(data, "shape", list, where)
        if not all(is_int(d) and d > 0 for d in shape):
            raise InputError(f"{where}.shape: expected a list of positive integers, got {short_repr(shape)}")
        dtype = required(data, "dtype", str, where)
        if dtype not in TENSOR_DTYPES:
            raise InputError(f"{where}.dtype: expected one of {', '.join(TENSOR_DTYPES)}, got {short_repr(dtype)}")
        scale = data.get("scale")
        zero_point = data.get("zero_point")
        if scale is not None and not (is_number(scale) and scale >= 0):
            raise InputError(f"{where}.scale: expected a non-negative number or null, got {short_repr(scale)}")
        if zero_point is not None and not is_int(zero_point):
            raise InputError(f"{where}.zero_point: expected an integer or null, got {short_repr(zero_point)}")
        if (scale is None) != (zero_point is None):
            raise InputError(f"{where}: scale and zero_point come together (both numbers, or both null)")
        preprocess = data.get("preprocess")
        labels = data.get("labels")
        if labels is not None and not isinstance(labels, str):
            raise InputError(f"{where}.labels: expected null or a file name, got {short_repr(labels)}")
        return cls(
            name,
            tuple(shape),
            dtype,
            None if scale is None else float(scale),
            zero_point,
            None if preprocess is None else Preprocess.from_dict(preprocess, f"{where}.preprocess"),
            labels,
        )


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input: resize to `size` (height, width), convert to `color`,
    then `x = (pixel - mean) / std` per channel on 0-255 pixel values."""

    size: tuple[int, int]
    color: str
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)
    layout: str = "NHWC"

    @property
    def channels(self) -> int:
        return 1 if self.color == "L" else 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "color": self.color,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "preprocess") -> Preprocess:
        expect(data, dict, where)
        size = required(data, "size", list, where)
        if len(size) != 2 or not all(is_int(v) and v > 0 for v in size):
            raise InputError(f"{where}.size: expected [height, width] as positive integers, got {short_repr(size)}")
        color = required(data, "color", str, where)
        if color not in COLOR_MODES:
            raise InputError(f"{where}.color: expected one of {', '.join(COLOR_MODES)}, got {short_repr(color)}")
        channels = 1 if color == "L" else 3
        mean = numbers(required(data, "mean", list, where), f"{where}.mean", channels)
        std = numbers(required(data, "std", list, where), f"{where}.std", channels)
        if any(s == 0 for s in std):
            raise InputError(f"{where}.std: must not be zero")
        layout = data.get("layout", "NHWC")
        if layout not in LAYOUTS:
            raise InputError(f"{where}.layout: expected NHWC or NCHW, got {short_repr(layout)}")
        return cls((size[0], size[1]), color, mean, std, layout)


@dataclass(frozen=True)
class FileEntry:
    """One file the manifest lists, as `files[name]`: its SHA-256 and size."""

    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class Manifest:
    """Everything the device half needs to know about a bundle (`edgekit.json`).

    `inputs` and `outputs` are in the `.tflite` interpreter's order, named as the source model names
    them. `preprocess` is the first input's (`inputs[0].preprocess`): passing it here sets that."""

    name: str
    created_by: str
    target: dict[str, Any]
    quantization: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: dict[str, FileEntry]
    preprocess: Preprocess | None = None
    task: str = "classify"
    labels: str | None = None  # the classifier output's labels file, kept at the top for 0.1 readers
    source: dict[str, Any] = field(default_factory=dict)
    conversion: dict[str, Any] = field(default_factory=dict)
    postprocess: dict[str, Any] = field(default_factory=dict)  # task-specific (detect: format, coordinates)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        inputs = tuple(self.inputs)
        if self.preprocess is not None and inputs and inputs[0].preprocess is None:
            inputs = (dataclasses.replace(inputs[0], preprocess=self.preprocess), *inputs[1:])
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "preprocess", inputs[0].preprocess if inputs else None)

    @property
    def budget_ms(self) -> float:
        return float(self.target.get("budget_ms", 10.0))

    @property
    def threads(self) -> int:
        return int(self.target.get("threads", 1))

    def output_labels(self, index: int) -> str | None:
        """The labels file of output `index`: its own, or the top-level one for a single output."""
        own = self.outputs[index].labels
        if own is not None:
            return own
        return self.labels if len(self.outputs) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "created_by": self.created_by,
            "target": dict(self.target),
            "quantization": self.quantization,
            "task": self.task,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "labels": self.labels,
            "postprocess": dict(self.postprocess),
            "files": {name: entry.to_dict() for name, entry in sorted(self.files.items())},
            "source": dict(self.source),
            "conversion": dict(self.conversion),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST_NAME) -> Manifest:
        """Validate manifest data (schema 1 or 2); errors name the field and what was expected."""
        expect(data, dict, where)
        if "schema" not in data:
            raise InputError(f"{where}: missing field 'schema'")
        schema = data["schema"]
        if not is_int(schema):
            raise InputError(f"{where}: schema: expected an integer, got {short_repr(schema)}")
        if schema > SCHEMA_VERSION:
            raise InputError(
                f"{where}: bundle schema {schema} is newer than this edgekit understands "
                f"({SCHEMA_VERSION}); upgrade edgekit"
            )
        if schema < 1:
            raise InputError(f"{where}: schema: unknown bundle schema {schema} (expected 1 to {SCHEMA_VERSION})")
        name = required(data, "name", str, where, root=True)
        if not name:
            raise InputError(f"{where}: name: must not be empty")
        created_by = required(data, "created_by", str, where, root=True)
        target = _target(required(data, "target", dict, where, root=True), f"{where}: target")
        quantization = required(data, "quantization", str, where, root=True)
        inputs = required(data, "inputs", list, where, root=True)
        outputs = required(data, "outputs", list, where, root=True)
        if not inputs or not outputs:
            raise InputError(f"{where}: a bundle needs at least one input and one output")
        entries = _file_entries(required(data, "files", dict, where, root=True), f"{where}: files")
        labels = data.get("labels")
        if labels is not None and (not isinstance(labels, str) or labels not in entries):
            raise InputError(f"{where}: labels: expected null or the name of a file listed in 'files'")
        input_specs = tuple(TensorSpec.from_dict(t, f"{where}: inputs[{i}]") for i, t in enumerate(inputs))
        output_specs = tuple(TensorSpec.from_dict(t, f"{where}: outputs[{i}]") for i, t in enumerate(outputs))
        for i, spec in enumerate(output_specs):
            if spec.labels is not None and spec.labels not in entries:
                raise InputError(f"{where}: outputs[{i}].labels: expected the name of a file listed in 'files'")
        _unique_names(input_specs, f"{where}: inputs")
        _unique_names(output_specs, f"{where}: outputs")
        preprocess = data.get("preprocess")  # schema 1: the only input's
        task = data.get("task", "classification" if schema == 1 else "classify")
        if schema == 1:
            task = SCHEMA_1_TASKS.get(task, task) if isinstance(task, str) else task
        if task not in TASKS:
            raise InputError(f"{where}: task: expected one of {', '.join(TASKS)}, got {short_repr(task)}")
        return cls(
            name=name,
            created_by=created_by,
            target=target,
            quantization=quantization,
            inputs=input_specs,
            outputs=output_specs,
            files=entries,
            preprocess=None if preprocess is None else Preprocess.from_dict(preprocess, f"{where}: preprocess"),
            task=task,
            labels=labels,
            source=_optional_dict(data, "source", where),
            conversion=_optional_dict(data, "conversion", where),
            postprocess=_optional_dict(data, "postprocess", where),
            schema=schema,
        )


def _unique_names(specs: tuple[TensorSpec, ...], where: str) -> None:
    """Inputs are given by name (`--input NAME=PATH`, `.npz` keys) and outputs saved by name."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise InputError(f"{where}: two tensors are named {short_repr(spec.name)}; names must be unique")
        seen.add(spec.name)


def _target(target: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields of the target profile that the device half reads must have usable values."""
    if "name" in target and not isinstance(target["name"], str):
        raise InputError(f"{where}.name: expected str, got {type(target['name']).__name__}")
    if "budget_ms" in target and not (is_number(target["budget_ms"]) and target["budget_ms"] > 0):
        raise InputError(f"{where}.budget_ms: expected a positive number, got {short_repr(target['budget_ms'])}")
    if "threads" in target and not (is_int(target["threads"]) and 1 <= target["threads"] <= MAX_THREADS):
        got = short_repr(target["threads"])
        raise InputError(f"{where}.threads: expected an integer from 1 to {MAX_THREADS}, got {got}")
    return target


def _file_entries(files: dict[str, Any], where: str) -> dict[str, FileEntry]:
    if len(files) > MAX_BUNDLE_FILES:
        raise InputError(f"{where}: lists {len(files)} files, at most {MAX_BUNDLE_FILES} are allowed")
    entries = {}
    for name, entry in files.items():
        fw = f"{where}[{name!r}]"
        if not plain_file_name(name) or name in (MANIFEST_NAME, SIGNATURE_NAME):
            raise InputError(f"{fw}: file names must be plain names of files inside the bundle")
        expect(entry, dict, fw)
        digest = required(entry, "sha256", str, fw)
        size = required(entry, "bytes", int, fw)
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InputError(f"{fw}.sha256: expected 64 lowercase hex digits")
        if size < 0:
            raise InputError(f"{fw}.bytes: expected a size of 0 or more, got {size}")
        entries[name] = FileEntry(digest, size)
    if MODEL_NAME not in entries:
        raise InputError(f"{where}: must list {MODEL_NAME}")
    return entries


def _optional_dict(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{where}: {key}: expected an object or null, got {type(value).__name__}")
    return value


def file_entry(path: Path) -> FileEntry:
    """The manifest entry for a file being bundled."""
    return FileEntry(sha256_file(path), path.stat().st_size)


def parse_manifest(content: bytes, where: str) -> Manifest:
    """Manifest bytes → validated Manifest; `where` names the file in error messages."""
    if len(content) > MAX_MANIFEST_BYTES:
        raise InputError(f"{where}: manifest is larger than {MAX_MANIFEST_BYTES} bytes, refused")
    try:
        data = json.loads(content.decode("utf-8"), object_pairs_hook=refuse_duplicates, parse_constant=refuse_constant)
    except UnicodeDecodeError:
        raise InputError(f"{where}: not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise InputError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, duplicate keys, NaN
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    return Manifest.from_dict(data, where=where)
