"""What one sample of `edgekit run` is, and how it becomes one tensor per model input.

A sample is a path (an image or `.npy` for a one-input model, or a `.npz` whose keys are the input
names, for any model) or a mapping `{input name: path or array}` (`--input NAME=PATH`, the Python
API). Each input is checked against the manifest and refused with its name when it does not fit.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import numpy as np

from edgekit.bundle import TensorSpec
from edgekit.errors import InputError
from edgekit.runtime.preprocess import (
    ARRAY_SUFFIXES,
    IMAGE_SUFFIXES,
    as_model_input,
    decode_image,
    load_input,
    normalize,
    quantize,
)

NPZ_SUFFIX = ".npz"
SAMPLE_SUFFIXES = IMAGE_SUFFIXES + ARRAY_SUFFIXES + (NPZ_SUFFIX,)
# A file name part made of anything a user's output name may hold: the rest becomes "_".
UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")

Sample = Union[str, "os.PathLike[str]", Mapping[str, Any]]


@dataclass(frozen=True)
class PreparedSample:
    """One sample as the interpreter takes it, with what post-processing needs to know of its source."""

    name: str  # how results call it: the path, or NAME=PATH,... for a sample given input by input
    stem: str  # what `--save-outputs` names its files after
    tensors: dict[str, np.ndarray]  # input name -> the exact tensor (dtype, quantization), manifest order
    image: Path | None = None  # the image file of the first image input, when it came from one
    original_size: tuple[int, int] | None = None  # that image's upright (width, height)


def safe_name(name: str) -> str:
    """A tensor or file name as a part of a file name: characters outside [A-Za-z0-9._-] become `_`."""
    return UNSAFE_NAME_CHARS.sub("_", name) or "_"


def collect_samples(inputs: Iterable[Sample]) -> list[Sample]:
    """Expand folders (recursively, sorted) into their image, `.npy` and `.npz` files; mappings stay as
    they are (one sample given input by input)."""
    samples: list[Sample] = []
    for item in inputs:
        if isinstance(item, Mapping):
            samples.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SAMPLE_SUFFIXES)
            if not found:
                raise InputError(f"{path}: folder holds no images, .npy or .npz files")
            samples.extend(found)
        elif path.is_file():
            samples.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return samples


def sample_name(sample: Sample, index: int) -> str:
    if not isinstance(sample, Mapping):
        return str(sample)
    return ",".join(f"{name}={_shown(value, index)}" for name, value in sample.items())


def _shown(value: Any, index: int) -> str:
    return f"<array {index}>" if isinstance(value, np.ndarray) else str(value)


def sample_stem(sample: Sample, index: int) -> str:
    """The file stem outputs are saved under: the sample's file, or the first file of a mapping."""
    if not isinstance(sample, Mapping):
        return Path(sample).stem
    for value in sample.values():
        if not isinstance(value, np.ndarray):
            return Path(value).stem
    return f"sample-{index}"


def prepare_sample(sample: Sample, inputs: tuple[TensorSpec, ...], index: int = 0) -> PreparedSample:
    """A sample → one tensor per input in the interpreter's dtype, checked input by input."""
    name = sample_name(sample, index)
    if isinstance(sample, Mapping):
        values = _mapping_values(sample, inputs, name)
        return _prepare(name, sample_stem(sample, index), values, inputs)
    path = Path(sample)
    if path.suffix.lower() == NPZ_SUFFIX:
        return _prepare(name, path.stem, _npz_values(path, inputs), inputs, f"{path}: ")
    if len(inputs) != 1:
        raise InputError(
            f"{path}: this model has {len(inputs)} inputs ({', '.join(t.name for t in inputs)}): give a .npz "
            "with one array per input name, or --input NAME=PATH for each"
        )
    return _prepare(name, path.stem, {inputs[0].name: path}, inputs)


def zeros_sample(inputs: tuple[TensorSpec, ...]) -> PreparedSample:
    """Zeros for every input (`run` without inputs: a latency check)."""
    tensors = {t.name: quantize(np.zeros(t.shape, dtype=np.float32), t) for t in inputs}
    return PreparedSample("<zeros>", "zeros", tensors, original_size=_input_size(inputs))


def _mapping_values(given: Mapping[str, Any], inputs: tuple[TensorSpec, ...], what: str) -> dict[str, Any]:
    """The values of a mapping keyed by input names: every input, and nothing else."""
    names = [t.name for t in inputs]
    for key in given:
        if key not in names:
            raise InputError(f"{what}: {key!r} is not an input of this model (inputs: {', '.join(names)})")
    for key in names:
        if key not in given:
            raise InputError(f"{what}: lacks input {key!r} (the model takes: {', '.join(names)})")
    return dict(given)


def _npz_values(path: Path, inputs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    """A `.npz` with one array per input name; never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise InputError(f"{path}: is a single .npy array, not a .npz archive")
            keys = list(archive.keys())
            _mapping_values(dict.fromkeys(keys), inputs, str(path))
            return {key: archive[key] for key in keys}
    except InputError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: cannot read .npz ({' '.join(str(exc).split())[:200] or 'empty file'})") from None
    except Exception as exc:  # damaged headers, pickled members: numpy raises many types
        text = " ".join(str(exc).split()) or type(exc).__name__
        if "Python objects" in text or "pickle" in text:
            raise InputError(f"{path}: holds Python objects; edgekit reads plain numeric arrays only") from None
        raise InputError(f"{path}: not a .npz of plain numeric arrays ({text[:200]})") from None


def _prepare(
    name: str, stem: str, values: dict[str, Any], inputs: tuple[TensorSpec, ...], origin: str = ""
) -> PreparedSample:
    tensors: dict[str, np.ndarray] = {}
    image: Path | None = None
    original_size: tuple[int, int] | None = None
    for spec in inputs:
        value = values[spec.name]
        if isinstance(value, np.ndarray):
            x = as_model_input(value, spec, spec.preprocess, f"{origin}input {spec.name!r}")
        elif isinstance(value, (str, os.PathLike)):
            path = Path(value)
            if not path.is_file():
                raise InputError(f"{path}: input {spec.name!r}: no such file")
            if path.suffix.lower() in IMAGE_SUFFIXES and spec.preprocess is not None:
                x, size = _image(path, spec)
                if image is None:
                    image, original_size = path, size
            elif path.suffix.lower() == NPZ_SUFFIX:
                raise InputError(f"{path}: input {spec.name!r} takes an image or a .npy array, not a .npz")
            else:
                x = _file_input(path, spec)
        else:
            raise InputError(f"input {spec.name!r}: expected a file path or a numpy array, got {type(value).__name__}")
        tensors[spec.name] = quantize(x, spec)
    if original_size is None:
        original_size = _input_size(inputs)
    return PreparedSample(name, stem, tensors, image, original_size)


def _image(path: Path, spec: TensorSpec) -> tuple[np.ndarray, tuple[int, int]]:
    pixels, size = decode_image(path, spec.preprocess)
    x = normalize(pixels, spec.preprocess)[None]
    if spec.preprocess.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return x, size


def _file_input(path: Path, spec: TensorSpec) -> np.ndarray:
    """An image or `.npy` for one input; its errors name the input after the file."""
    try:
        return load_input(path, spec, spec.preprocess)
    except InputError as exc:
        message, prefix = str(exc), f"{path}: "
        if message.startswith(prefix) and f"input {spec.name!r}" not in message:
            raise InputError(f"{prefix}input {spec.name!r}: {message[len(prefix) :]}") from None
        raise


def _input_size(inputs: tuple[TensorSpec, ...]) -> tuple[int, int] | None:
    """Without an image file, boxes and masks are in the first image input's own pixels."""
    for spec in inputs:
        if spec.preprocess is not None:
            height, width = spec.preprocess.size
            return (width, height)
    return None
