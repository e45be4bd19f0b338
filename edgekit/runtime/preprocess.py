"""Turn images and `.npy` arrays into input tensors exactly as the manifest says.

The same functions serve calibration on the laptop and `edgekit run` on the device, so a model is
calibrated on exactly what it will see.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
ARRAY_SUFFIXES = (".npy",)
MAX_IMAGE_PIXELS = 64_000_000


def collect_input_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, sorted) into the image and `.npy` files they hold."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_input(p))
            if not found:
                raise InputError(f"{path}: folder holds no images or .npy files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files


def _is_input(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES + ARRAY_SUFFIXES


def image_pixels(path: Path, spec: Preprocess) -> np.ndarray:
    """Decode an image as the model expects it: upright (EXIF), in the colour mode, resized;
    uint8 array of shape (height, width, channels)."""
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    height, width = spec.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format == "JPEG":
                    # Let libjpeg decode at a reduced scale when the image is much larger: far less work.
                    image.draft(spec.color, (width, height))
                image = ImageOps.exif_transpose(image)
                image = _to_color(image, spec.color)
                if image.size != (width, height):
                    image = image.resize((width, height), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: image is too large (over {MAX_IMAGE_PIXELS} pixels), refused") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return pixels


def _to_color(image, color: str):
    """Convert any Pillow mode (palette, alpha, CMYK, 16-bit, ...) to 8-bit L or RGB."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != color:
        image = image.convert(color)
    return image


def normalize(pixels: np.ndarray, spec: Preprocess) -> np.ndarray:
    """`(pixel - mean) / std` in float32, per channel."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (pixels.astype(np.float32) - mean) / std


def image_input(path: Path, spec: Preprocess) -> np.ndarray:
    """An image file as a float32 model input of shape (1, H, W, C) (or NCHW when the layout says)."""
    x = normalize(image_pixels(path, spec), spec)[None]
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return x


def array_input(path: Path, tensor: TensorSpec, spec: Preprocess | None) -> np.ndarray:
    """A `.npy` file as a model input batch of one.

    float arrays are taken as already preprocessed; uint8 arrays of an image-shaped input are raw
    pixels and get the manifest's normalization; arrays already in the input tensor's integer dtype
    are passed through untouched.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path}: not a plain numeric .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read .npy ({exc})") from None
    return as_model_input(array, tensor, spec, str(path))


def as_model_input(array: np.ndarray, tensor: TensorSpec, spec: Preprocess | None, where: str) -> np.ndarray:
    """Bring an array to the input tensor's shape (adding the batch axis) and a float32 or raw dtype."""
    shape = tuple(tensor.shape)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise InputError(f"{where}: expected a numeric array, got dtype {getattr(array, 'dtype', type(array))}")
    if array.shape == shape[1:]:
        array = array[None]
    if array.shape != shape:
        raise InputError(f"{where}: array shape {array.shape} does not match the input shape {shape}")
    if array.dtype == np.dtype(tensor.dtype) and array.dtype.kind in "iu":
        return array
    if array.dtype == np.uint8 and spec is not None:
        return normalize(array, spec).astype(np.float32)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    raise InputError(f"{where}: dtype {array.dtype} does not fit input {tensor.name!r} ({tensor.dtype})")


def quantize(x: np.ndarray, tensor: TensorSpec) -> np.ndarray:
    """Float input → the tensor's dtype, using its scale and zero point when it is quantized."""
    dtype = np.dtype(tensor.dtype)
    if x.dtype == dtype:
        return x
    if tensor.quantized:
        info = np.iinfo(dtype)
        q = np.round(x / np.float32(tensor.scale)) + tensor.zero_point
        return np.clip(q, info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize(y: np.ndarray, tensor: TensorSpec) -> np.ndarray:
    """Output tensor → float32 values (scores) using its quantization when it has one."""
    if tensor.quantized:
        return (y.astype(np.float32) - np.float32(tensor.zero_point)) * np.float32(tensor.scale)
    return y.astype(np.float32, copy=False)


def load_input(path: Path, tensor: TensorSpec, spec: Preprocess | None) -> np.ndarray:
    """Any supported input file → a batch-of-one array ready for `quantize`."""
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return array_input(path, tensor, spec)
    if suffix in IMAGE_SUFFIXES:
        if spec is None:
            raise InputError(f"{path}: this bundle takes .npy arrays, not images (no image preprocessing)")
        return image_input(path, spec)
    raise InputError(f"{path}: unsupported input type (images: {' '.join(IMAGE_SUFFIXES)}; arrays: .npy)")
