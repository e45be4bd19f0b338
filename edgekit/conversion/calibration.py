"""Calibration and verification samples: a folder of images, a `.npy` or a `.npz` → float32 inputs,
preprocessed by the same code `edgekit run` uses on the device."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.errors import InputError
from edgekit.runtime.preprocess import IMAGE_SUFFIXES, as_model_input, image_input

DEFAULT_CALIBRATION_SIZE = 300


def evenly_spaced(count: int, limit: int) -> np.ndarray:
    """Indices of at most `limit` items spread over `count`: deterministic and class-balanced for
    sorted per-class folders, unlike taking the first `limit`."""
    if count <= limit:
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
    path: str | Path, tensor: TensorSpec, preprocess: Preprocess | None, limit: int = DEFAULT_CALIBRATION_SIZE
) -> np.ndarray:
    """Up to `limit` float32 model inputs of shape (N, *tensor.shape[1:])."""
    source = Path(path)
    if limit < 1:
        raise InputError(f"calibration size must be at least 1, got {limit}")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{source}: folder holds no images")
        if preprocess is None:
            raise InputError(f"{source}: this model's input is not an image; give a .npy or .npz")
        chosen = [files[i] for i in evenly_spaced(len(files), limit)]
        return np.concatenate([image_input(p, preprocess) for p in chosen]).astype(np.float32)
    if not source.is_file():
        raise InputError(f"{source}: no such file or folder")
    if source.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"{source}: calibration data must be a folder of images, a .npy or a .npz")
    x, _ = load_array_file(source)
    if x.ndim != len(tensor.shape) or tuple(x.shape[1:]) != tuple(tensor.shape[1:]):
        raise InputError(
            f"{source}: samples have shape {tuple(x.shape)}, expected (N, "
            f"{', '.join(str(d) for d in tensor.shape[1:])})"
        )
    if x.shape[0] == 0:
        raise InputError(f"{source}: holds no samples")
    x = x[evenly_spaced(x.shape[0], limit)]
    float_spec = TensorSpec(tensor.name, tensor.shape, "float32")
    return np.concatenate([as_model_input(s, float_spec, preprocess, str(source)) for s in x])
