"""Labelled evaluation data (`--eval-data`) and top-1 accuracy: what a conversion costs in the unit users
care about, percentage points of accuracy.

Evaluation data is a folder with one subfolder of images per class, or a `.npz` holding `x` (inputs,
raw uint8 pixels or preprocessed floats) and `y` (integer labels, or one-hot rows). Images directly in
the folder, a `.npy` or a `.npz` without `y` are unlabelled: they still serve the fidelity check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.conversion.calibration import evenly_spaced, load_array_file
from edgekit.errors import InputError
from edgekit.runtime.preprocess import IMAGE_SUFFIXES, as_model_input, image_input

DEFAULT_EVAL_SIZE = 500  # 500 MobileNet-sized inputs are already 300 MB of float32


@dataclass(frozen=True)
class EvalData:
    """Preprocessed float32 inputs, with integer labels when the data has them."""

    x: np.ndarray
    y: np.ndarray | None
    path: str
    classes: tuple[str, ...] = ()

    @property
    def labelled(self) -> bool:
        return self.y is not None


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy of the source model and of a converted one on the same labelled inputs."""

    source: float
    converted: float
    samples: int

    @property
    def drop_pts(self) -> float:
        """How much accuracy the conversion lost, in percentage points (negative: it gained)."""
        return (self.source - self.converted) * 100.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": round(self.source, 4),
            "converted": round(self.converted, 4),
            "drop_pts": round(self.drop_pts, 2),
            "samples": self.samples,
        }


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float((outputs.reshape(len(outputs), -1).argmax(axis=1) == labels).mean())


def load_eval_data(
    path: str | Path,
    tensor: TensorSpec,
    preprocess: Preprocess | None,
    labels: Sequence[str] | None = None,
    limit: int = DEFAULT_EVAL_SIZE,
) -> EvalData:
    """Up to `limit` evaluation inputs (spread evenly, so every class keeps its share) and their labels."""
    source = Path(path)
    if limit < 1:
        raise InputError(f"--eval-size must be at least 1, got {limit}")
    if source.is_dir():
        return _image_folder(source, preprocess, labels, limit)
    if not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    if source.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"{source}: evaluation data must be a folder (one subfolder per class), a .npz or a .npy")
    x, y = load_array_file(source)
    if x.ndim != len(tensor.shape) or tuple(x.shape[1:]) != tuple(tensor.shape[1:]):
        raise InputError(
            f"{source}: x has shape {tuple(x.shape)}, expected (N, {', '.join(str(d) for d in tensor.shape[1:])})"
        )
    if len(x) == 0:
        raise InputError(f"{source}: holds no samples")
    labels_array = None if y is None else _integer_labels(y, len(x), source)
    chosen = evenly_spaced(len(x), limit)
    float_spec = TensorSpec(tensor.name, tensor.shape, "float32")
    inputs = np.concatenate([as_model_input(s, float_spec, preprocess, str(source)) for s in x[chosen]])
    return EvalData(inputs, None if labels_array is None else labels_array[chosen], str(source))


def _integer_labels(y: np.ndarray, count: int, source: Path) -> np.ndarray:
    if y.ndim == 2 and y.shape[0] == count and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot rows
    if y.ndim != 1 or y.shape[0] != count:
        raise InputError(f"{source}: y has shape {tuple(y.shape)}, expected ({count},) labels for {count} samples")
    if y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0)):
        raise InputError(f"{source}: y must hold integer class indices")
    if y.dtype.kind not in "iuf" or (len(y) and y.min() < 0):
        raise InputError(f"{source}: y must hold non-negative integer class indices")
    return y.astype(np.int64)


def _image_folder(root: Path, preprocess: Preprocess | None, labels: Sequence[str] | None, limit: int) -> EvalData:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{root}: folder holds no images")
    if preprocess is None:
        raise InputError(f"{root}: this model's input is not an image; give a .npz with x and y")
    loose = [p for p in files if p.parent == root]
    chosen = [files[i] for i in evenly_spaced(len(files), limit)]
    x = np.concatenate([image_input(p, preprocess) for p in chosen]).astype(np.float32)
    if loose:
        if len(loose) != len(files):
            raise InputError(f"{root}: images both at the top and in class folders; use one subfolder per class")
        return EvalData(x, None, str(root))
    names = sorted({p.relative_to(root).parts[0] for p in files})
    index = class_indices(names, labels, root)
    y = np.array([index[p.relative_to(root).parts[0]] for p in chosen], dtype=np.int64)
    return EvalData(x, y, str(root), tuple(names))


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
