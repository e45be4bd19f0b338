"""The model's input contract (tensor, preprocessing, classes, labels) and the one loader of sample
files: calibration, evaluation and fine-tuning data all come through `load_samples` as `Samples`.

Data is a folder of images (with one subfolder per class when it carries labels), a `.npy`, or a
`.npz` holding `x` (raw uint8 pixels or preprocessed floats) and optionally `y`. Inputs go through the
same preprocessing code `edgekit run` uses on the device, once, as one batch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit import defaults
from edgekit.bundle import Preprocess, TensorSpec
from edgekit.errors import InputError
from edgekit.runtime.preprocess import IMAGE_SUFFIXES, as_model_input, image_input

CALIBRATION = "--calibration"  # inputs only: labels, if any, are ignored
EVALUATION = "--eval-data"  # labels when the data has them, as class indices
TRAINING = "--finetune-data"  # labels required: class indices, one-hot rows or regression targets


@dataclass(frozen=True)
class ModelInputs:
    """What the model takes and answers: its float input tensor, the image preprocessing (None for
    array inputs), the number of classes (None unless its output is one score per class) and labels."""

    tensor: TensorSpec
    preprocess: Preprocess | None
    classes: int | None
    labels: tuple[str, ...] | None = None

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None and self.classes > 1


@dataclass(frozen=True)
class Samples:
    """Preprocessed float32 model inputs, with their labels (`y`) when the data has them."""

    x: np.ndarray
    y: np.ndarray | None
    path: str
    classes: tuple[str, ...] = ()  # class folder names, when labels came from folders

    @property
    def labelled(self) -> bool:
        return self.y is not None

    def __len__(self) -> int:
        return int(self.x.shape[0])


def model_inputs(
    input_shape: Sequence[int | None],
    output_shape: Sequence[int | None],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    labels: str | os.PathLike[str] | None = None,
) -> ModelInputs:
    """The input contract of a model with these shapes and the user's --mean/--std/--labels."""
    tensor = TensorSpec("input", (1, *[int(d or 1) for d in input_shape[1:]]), "float32")
    classes = int(output_shape[-1]) if len(output_shape) == 2 and output_shape[-1] else None
    label_list = read_labels(labels, classes)
    return ModelInputs(tensor, image_preprocess(tuple(input_shape), mean, std), classes, label_list)


def parse_channels(values: Sequence[float] | None, default: float, channels: int, name: str) -> tuple[float, ...]:
    """One value for all channels or one per channel."""
    if not values:
        return (float(default),)
    if len(values) not in (1, channels):
        raise InputError(
            f"--{name} takes 1 or {channels} values for this model's {channels} channels, got {len(values)}"
        )
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"--{name} values must be finite numbers, got {', '.join(map(str, values))}")
    if name == "std" and any(v == 0 for v in values):
        raise InputError("--std must not be zero")
    return tuple(float(v) for v in values)


def image_preprocess(
    input_shape: tuple[int | None, ...], mean: Sequence[float] | None, std: Sequence[float] | None
) -> Preprocess | None:
    """The preprocessing contract from the input shape: NHWC (or NCHW) with 1 or 3 channels is an
    image; anything else takes arrays only."""
    if len(input_shape) != 4:
        if mean or std:
            raise InputError("--mean/--std apply to image inputs; this model's input is not an image")
        return None
    _, a, b, c = input_shape
    if c in (1, 3) and a and b:
        layout, size, channels = "NHWC", (int(a), int(b)), int(c)
    elif a in (1, 3) and b and c:
        layout, size, channels = "NCHW", (int(b), int(c)), int(a)
    else:
        return None
    return Preprocess(
        size=size,
        color="L" if channels == 1 else "RGB",
        mean=parse_channels(mean, defaults.MEAN, channels, "mean"),
        std=parse_channels(std, defaults.STD, channels, "std"),
        layout=layout,
    )


def read_labels(path: str | os.PathLike[str] | None, classes: int | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    source = Path(path)
    try:
        labels = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read labels ({exc})") from None
    if classes is not None and len(labels) != classes:
        raise InputError(f"{source}: {len(labels)} labels for a model with {classes} outputs")
    return tuple(labels)


def synthetic_samples(tensor: TensorSpec, preprocess: Preprocess | None, count: int) -> np.ndarray:
    """Random inputs in the model's input range, for fidelity only (never for calibration)."""
    rng = np.random.default_rng(0)
    shape = (count, *tensor.shape[1:])
    if preprocess is None:
        return rng.standard_normal(shape).astype(np.float32)
    pixels = rng.integers(0, 256, size=shape).astype(np.float32)
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    if preprocess.layout == "NCHW":
        mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
    return ((pixels - mean) / std).astype(np.float32)


def evenly_spaced(count: int, limit: int | None) -> np.ndarray:
    """Indices of at most `limit` items spread over `count`: deterministic and class-balanced for
    sorted per-class folders, unlike taking the first `limit`."""
    if limit is None or count <= limit:
        return np.arange(count)
    return np.linspace(0, count - 1, limit).round().astype(int)


def load_array_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """`.npy` → (x, None); `.npz` → (x, y) from keys `x` and `y` (or its only array)."""
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path}: not a plain numeric array file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if isinstance(data, np.ndarray):
        return data, None
    with data:
        keys = list(data.keys())
        if "x" in keys:
            x = data["x"]
        elif len(keys) == 1:
            x = data[keys[0]]
        else:
            raise InputError(f"{path}: .npz must hold an array 'x' (and optionally 'y'), found {keys}")
        y = data["y"] if "y" in keys else None
    return x, y


def load_samples(
    path: str | os.PathLike[str],
    tensor: TensorSpec,
    preprocess: Preprocess | None,
    limit: int | None = None,
    labels: Sequence[str] | None = None,
    option: str = CALIBRATION,
) -> Samples:
    """Up to `limit` samples (spread evenly, so every class keeps its share) as model inputs of shape
    (N, *tensor.shape[1:]); `option` says what they are for (CALIBRATION, EVALUATION or TRAINING) and
    so which labels they must carry. `labels` (the --labels file) maps class folder names to outputs."""
    source = Path(path)
    if limit is not None and limit < 1:
        raise InputError(f"{option}: sample count must be at least 1, got {limit}")
    if source.is_dir():
        return _image_folder(source, preprocess, labels, limit, option)
    if not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    if option == TRAINING and source.suffix.lower() != ".npz":
        raise InputError(f"{source}: {option} needs labels: a .npz with x and y, or a folder per class")
    if source.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"{source}: {option} takes a folder of images, a .npy or a .npz")
    x, y = load_array_file(source)
    if x.ndim != len(tensor.shape) or tuple(x.shape[1:]) != tuple(tensor.shape[1:]):
        expected = ", ".join(str(d) for d in tensor.shape[1:])
        raise InputError(f"{source}: samples have shape {tuple(x.shape)}, expected (N, {expected})")
    if len(x) == 0:
        raise InputError(f"{source}: holds no samples")
    if option == TRAINING and y is None:
        raise InputError(f"{source}: {option} needs labels: the .npz holds no 'y'")
    y = None if option == CALIBRATION or y is None else _checked_labels(y, len(x), source, option)
    chosen = evenly_spaced(len(x), limit)
    if len(chosen) < len(x):
        x, y = x[chosen], None if y is None else y[chosen]
    batch = TensorSpec(tensor.name, (len(x), *tensor.shape[1:]), "float32")
    return Samples(as_model_input(x, batch, preprocess, str(source)), y, str(source))


def _checked_labels(y: np.ndarray, count: int, source: Path, option: str) -> np.ndarray:
    """`y` as --eval-data needs it (class indices; one-hot rows become indices) or as fine-tuning takes
    it (class indices, or rows shaped like the model's output)."""
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


def _image_folder(
    root: Path, preprocess: Preprocess | None, labels: Sequence[str] | None, limit: int | None, option: str
) -> Samples:
    """Images at any depth (CALIBRATION), or one subfolder of images per class (labelled data)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{root}: folder holds no images")
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
    if option == CALIBRATION or loose:
        return Samples(x, None, str(root))
    names = sorted({p.relative_to(root).parts[0] for p in files})
    index = class_indices(names, labels, root)
    y = np.array([index[p.relative_to(root).parts[0]] for p in chosen], dtype=np.int64)
    return Samples(x, y, str(root), tuple(names))


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
