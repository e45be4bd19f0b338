"""The model's input contract (tensor, preprocessing, classes, labels) and the one loader of sample
files: calibration, evaluation and fine-tuning data all come through `load_samples` as `Samples`.

Data is a folder of images (with one subfolder per class when it carries labels), a `.npy`, or a
`.npz` holding `x` (raw uint8 pixels or preprocessed floats) and optionally `y`. Inputs go through the
same preprocessing code `edgekit run` uses on the device, once, as one batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Sequence

import numpy as np

from edgekit.bundle import TensorSpec
from edgekit.conversion.contract import (  # noqa: F401  (the contract's names, where callers found them)
    ModelInputs,
    image_preprocess,
    model_inputs,
    parse_channels,
    read_labels,
)
from edgekit.errors import InputError
from edgekit.runtime.preprocess import IMAGE_SUFFIXES, as_model_input, image_input

CALIBRATION = "--calibration"  # inputs only: labels, if any, are ignored
EVALUATION = "--eval-data"  # labels when the data has them, as class indices
TRAINING = "--finetune-data"  # labels required: class indices, one-hot rows or regression targets


@dataclass(frozen=True)
class Samples:
    """Preprocessed float32 model inputs (one array per input name, same first dimension), with their
    labels (`y`, one array per output name) when the data has them."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray] | None
    path: str
    classes: tuple[str, ...] = ()  # class folder names, when labels came from folders

    @property
    def labelled(self) -> bool:
        return bool(self.y)

    def __len__(self) -> int:
        return batch_size(self.x)


Batch = Dict[str, np.ndarray]  # model inputs by input name, one row per sample


def batch_size(batch: Batch) -> int:
    return int(next(iter(batch.values())).shape[0])


def take(batch: Batch, rows: Any) -> Batch:
    """The same rows (indices or a slice) of every input."""
    return {name: array[rows] for name, array in batch.items()}


def sample(batch: Batch, row: int) -> Batch:
    """One sample with its batch axis (shape (1, ...) per input)."""
    return {name: array[row : row + 1] for name, array in batch.items()}


def synthetic_samples(inputs: ModelInputs, count: int) -> Batch:
    """Random inputs in each input's range, for fidelity only (never for calibration)."""
    rng = np.random.default_rng(0)
    batch = {}
    for tensor, preprocess in zip(inputs.tensors, inputs.preprocesses):
        shape = (count, *tensor.shape[1:])
        if preprocess is None:
            batch[tensor.name] = rng.standard_normal(shape).astype(np.float32)
            continue
        pixels = rng.integers(0, 256, size=shape).astype(np.float32)
        mean = np.asarray(preprocess.mean, dtype=np.float32)
        std = np.asarray(preprocess.std, dtype=np.float32)
        if preprocess.layout == "NCHW":
            mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        batch[tensor.name] = ((pixels - mean) / std).astype(np.float32)
    return batch


def evenly_spaced(count: int, limit: int | None) -> np.ndarray:
    """Indices of at most `limit` items spread over `count`: deterministic and class-balanced for
    sorted per-class folders, unlike taking the first `limit`."""
    if limit is None or count <= limit:
        return np.arange(count)
    return np.linspace(0, count - 1, limit).round().astype(int)


def load_array_file(path: Path, inputs: ModelInputs) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """`.npy` → the only input; `.npz` → one array per input name (`x` for a one-input model), and
    labels: `y` (the classifier's, or the only output's) and `y_<output>` per output."""
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path}: not a plain numeric array file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    names = inputs.names
    if isinstance(data, np.ndarray):
        if len(names) > 1:
            raise InputError(f"{path}: this model has {len(names)} inputs; give a .npz with one array per input name")
        return {names[0]: data}, {}
    with data:
        keys = list(data.keys())
        if len(names) == 1 and names[0] not in keys:
            arrays = [k for k in keys if k != "y" and not k.startswith("y_")]
            if "x" in keys:
                x = {names[0]: data["x"]}
            elif len(arrays) == 1:
                x = {names[0]: data[arrays[0]]}
            else:
                raise InputError(f"{path}: .npz must hold an array 'x' (and optionally 'y'), found {keys}")
        else:
            missing = [n for n in names if n not in keys]
            if missing:
                raise InputError(
                    f"{path}: no array for input {missing[0]!r} (a .npz holds one array per input name: "
                    f"{', '.join(names)}; found {', '.join(keys)})"
                )
            x = {n: data[n] for n in names}
        labels = {k: data[k] for k in keys if k == "y" or k.startswith("y_")}
    return x, output_labels(labels, inputs, path)


def output_labels(labels: dict[str, np.ndarray], inputs: ModelInputs, path: Path) -> dict[str, np.ndarray]:
    """`y` / `y_<output>` → output name → labels; `y` is the classifier output's (or the only output's)."""
    outputs = inputs.output_names or ("output",)
    result = {}
    for key, value in labels.items():
        if key == "y":
            index = inputs.classifier if inputs.classifier is not None else (0 if len(outputs) == 1 else None)
            if index is None:
                raise InputError(
                    f"{path}: 'y' is ambiguous for a model with {len(outputs)} outputs and no single classifier: "
                    f"name the output, y_<output> ({', '.join(outputs)})"
                )
            result[outputs[index]] = value
        else:
            name = key[2:]
            if name not in outputs:
                raise InputError(f"{path}: {key}: the model has no output {name!r} (outputs: {', '.join(outputs)})")
            result[name] = value
    return result


def load_samples(
    path: str | os.PathLike[str],
    inputs: ModelInputs,
    limit: int | None = None,
    option: str = CALIBRATION,
) -> Samples:
    """Up to `limit` samples (spread evenly, so every class keeps its share) as model inputs, one array
    of shape (N, *tensor.shape[1:]) per input; `option` says what they are for (CALIBRATION, EVALUATION
    or TRAINING) and so which labels they must carry. The --labels file maps class folder names."""
    source = Path(path)
    if limit is not None and limit < 1:
        raise InputError(f"{option}: sample count must be at least 1, got {limit}")
    if source.is_dir():
        return _image_folder(source, inputs, limit, option)
    if not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    if option == TRAINING and source.suffix.lower() != ".npz":
        raise InputError(f"{source}: {option} needs labels: a .npz with x and y, or a folder per class")
    if source.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"{source}: {option} takes a folder of images, a .npy or a .npz")
    x, y = load_array_file(source, inputs)
    count = None
    for tensor in inputs.tensors:
        array = x[tensor.name]
        if array.ndim != len(tensor.shape) or tuple(array.shape[1:]) != tuple(tensor.shape[1:]):
            expected = ", ".join(str(d) for d in tensor.shape[1:])
            which = f" input {tensor.name!r}:" if len(inputs.tensors) > 1 else ""
            raise InputError(f"{source}:{which} samples have shape {tuple(array.shape)}, expected (N, {expected})")
        if count is not None and len(array) != count:
            raise InputError(f"{source}: input {tensor.name!r} has {len(array)} samples, the others {count}")
        count = len(array)
    if not count:
        raise InputError(f"{source}: holds no samples")
    if option == TRAINING and not y:
        raise InputError(f"{source}: {option} needs labels: the .npz holds no 'y' (or y_<output>)")
    y = {} if option == CALIBRATION else {k: _checked_labels(v, count, source, option, k) for k, v in y.items()}
    chosen = evenly_spaced(count, limit)
    if len(chosen) < count:
        x, y = take(x, chosen), take(y, chosen)
    batch = {}
    for tensor, preprocess in zip(inputs.tensors, inputs.preprocesses):
        spec = TensorSpec(tensor.name, (len(chosen), *tensor.shape[1:]), "float32")
        where = str(source) if len(inputs.tensors) == 1 else f"{source}: input {tensor.name!r}"
        batch[tensor.name] = as_model_input(x[tensor.name], spec, preprocess, where)
    return Samples(batch, y or None, str(source))


def _checked_labels(y: np.ndarray, count: int, source: Path, option: str, output: str = "") -> np.ndarray:
    """`y` as --eval-data needs it (class indices; one-hot rows become indices) or as fine-tuning takes
    it (class indices, or rows shaped like the model's output)."""
    source = Path(f"{source} (labels of {output})") if output else source
    if y.ndim == 0 or y.shape[0] != count:
        raise InputError(f"{source}: y has shape {tuple(y.shape)}, expected ({count},) labels for {count} samples")
    if y.dtype.kind not in "biuf":
        raise InputError(f"{source}: labels 'y' must be numbers, got dtype {y.dtype}")
    if option == EVALUATION:
        if y.ndim == 2 and y.shape[1] > 1:
            y = y.argmax(axis=1)  # one-hot rows
        if y.ndim != 1:
            raise InputError(f"{source}: y has shape {tuple(y.shape)}, expected ({count},) labels for {count} samples")
        if y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0)):
            raise InputError(f"{source}: y must hold integer class indices")
        if len(y) and y.min() < 0:
            raise InputError(f"{source}: y must hold non-negative integer class indices")
        return y.astype(np.int64)
    if y.dtype.kind == "f" and y.ndim == 1 and np.array_equal(y, np.round(y)):
        return y.astype(np.int64)  # class indices stored as floats
    return np.asarray(y)


def _image_folder(root: Path, inputs: ModelInputs, limit: int | None, option: str) -> Samples:
    """Images at any depth (CALIBRATION), or one subfolder of images per class (labelled data)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{root}: folder holds no images")
    preprocess, labels = inputs.preprocess, inputs.labels
    if len(inputs.tensors) > 1:
        raise InputError(
            f"{root}: a folder of images feeds one-image-input models; this one has {len(inputs.tensors)} inputs "
            f"({', '.join(inputs.names)}): give {option} as a .npz with one array per input name"
        )
    if preprocess is None:
        kinds = "a .npy or .npz" if option == CALIBRATION else "a .npz with x and y"
        raise InputError(f"{root}: this model's input is not an image; give {option} as {kinds}")
    loose = [p for p in files if p.parent == root]
    if option == TRAINING and loose:
        raise InputError(f"{root}: {option} folder needs one subfolder of images per class")
    if option != CALIBRATION and loose and len(loose) != len(files):
        raise InputError(f"{root}: images both at the top and in class folders; use one subfolder per class")
    chosen = [files[i] for i in evenly_spaced(len(files), limit)]
    x = np.concatenate([image_input(p, preprocess) for p in chosen]).astype(np.float32)
    name = inputs.names[0]
    if option == CALIBRATION or loose:
        return Samples({name: x}, None, str(root))
    names = sorted({p.relative_to(root).parts[0] for p in files})
    index = class_indices(names, labels, root)
    y = np.array([index[p.relative_to(root).parts[0]] for p in chosen], dtype=np.int64)
    output = inputs.output_names[inputs.classifier or 0] if inputs.output_names else "output"
    return Samples({name: x}, {output: y}, str(root), tuple(names))


def class_indices(names: Sequence[str], labels: Sequence[str] | None, root: Path) -> dict[str, int]:
    """Class folder name → output index: by the --labels file when there is one, by the number when every
    folder is named by one (0, 1, ...), else in sorted order (as Keras' image_dataset_from_directory)."""
    if labels:
        missing = [n for n in names if n not in labels]
        if missing:
            raise InputError(f"{root / missing[0]}: class folder matches no line of --labels")
        return {n: list(labels).index(n) for n in names}
    if all(n.isdigit() for n in names):
        return {n: int(n) for n in names}
    return {n: i for i, n in enumerate(names)}
