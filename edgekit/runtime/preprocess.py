"""Turn images and `.npy` arrays into input tensors exactly as the manifest says.

The same functions serve calibration on the laptop and `edgekit run` on the device, so a model is
calibrated on exactly what it will see.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
ARRAY_SUFFIXES = (".npy",)
MAX_IMAGE_PIXELS = 64_000_000
EXIF_ORIENTATION = 0x0112


def image_pixels(path: Path, spec: Preprocess) -> np.ndarray:
    """Decode an image as the model expects it: upright (EXIF), in the colour mode, resized;
    uint8 array of shape (height, width, channels)."""
    return decode_image(path, spec)[0]


def decode_image(path: Path, spec: Preprocess) -> tuple[np.ndarray, tuple[int, int]]:
    """`image_pixels`, and the upright image's own (width, height) before the resize: what boxes
    and masks are scaled back to."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    height, width = spec.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                original = None
                if image.format == "JPEG":
                    # Let libjpeg decode at a reduced scale when the image is much larger: far less work.
                    # The size asked for is in stored orientation, so swap it when EXIF will rotate by 90°.
                    turned = image.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
                    original = image.size[::-1] if turned else image.size  # before draft mode shrinks it
                    image.draft(spec.color, (height, width) if turned else (width, height))
                image = _upright(image)
                original = original or image.size
                image = _to_color(image, spec.color)
                if image.size != (width, height):
                    image = image.resize((width, height), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: image is too large (over {MAX_IMAGE_PIXELS} pixels), refused") from None
    except MemoryError:
        raise InputError(f"{path}: image is too large to decode in memory") from None
    except Exception as exc:  # Pillow's decoders raise many types on damaged files: all mean "unreadable"
        raise InputError(f"{path}: cannot read image ({_describe(exc)})") from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return pixels, original


def _upright(image):
    """The image turned as its EXIF orientation says (ImageOps is imported only for images that need it)."""
    image.load()  # a PNG may carry its EXIF after the pixels
    if image.getexif().get(EXIF_ORIENTATION, 1) in (2, 3, 4, 5, 6, 7, 8):
        from PIL import ImageOps

        return ImageOps.exif_transpose(image)
    return image


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if not text or isinstance(exc, (IndexError, KeyError, TypeError, ZeroDivisionError, AttributeError)):
        text = f"{type(exc).__name__}{': ' + text if text else ''}"
    return text if len(text) <= 200 else text[:197] + "..."


def _to_color(image, color: str):
    """Convert any Pillow mode (palette, alpha, CMYK, 16-bit, ...) to 8-bit L or RGB.

    Everything that is neither L nor RGB goes through RGB first, so an unusual image gives exactly
    the pixels its plain RGB twin gives. Transparent pixels become white."""
    from PIL import Image

    if image.mode.startswith("I;16"):
        # 16 bits per sample by definition: full scale is 65535.
        image = _scaled_to_8_bits(image, 65535.0)
    elif image.mode in ("I", "F"):
        # 32-bit integer or float samples say nothing about their range: 16-bit data when it exceeds 255.
        values = np.asarray(image, dtype=np.float64)
        image = _scaled_to_8_bits(image, 65535.0 if values.max(initial=0) > 255 else 255.0)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    if image.mode != color:
        image = image.convert(color)
    return image


def _scaled_to_8_bits(image, full_scale: float):
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(values / full_scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def normalize(pixels: np.ndarray, spec: Preprocess, channel_axis: int = -1) -> np.ndarray:
    """`(pixel - mean) / std` in float32, per channel (the last axis, or `channel_axis`)."""
    per_channel = [1] * pixels.ndim
    per_channel[channel_axis] = -1
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(per_channel)
    std = np.asarray(spec.std, dtype=np.float32).reshape(per_channel)
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
    are passed through untouched. Never unpickles: object arrays are refused.
    """
    array = load_npy(path)
    shape = tuple(tensor.shape)
    if array.shape not in (shape, shape[1:]):
        # Checked on the memory map, before reading a byte of data: a wrong file can be huge.
        raise InputError(f"{path}: array shape {array.shape} does not match the input shape {shape}")
    return as_model_input(np.array(array), tensor, spec, str(path))


def load_npy(path: Path) -> np.ndarray:
    """A plain numeric `.npy`, memory-mapped (nothing is read until used), never unpickled."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read .npy ({' '.join(str(exc).split())[:200] or 'empty file'})") from None
    except Exception as exc:  # numpy parses the header as a Python literal: damaged headers raise many types
        text = " ".join(str(exc).split()) or type(exc).__name__
        if "Python objects" in text or "pickle" in text:
            raise InputError(
                f"{path}: holds Python objects (a pickled array); edgekit reads plain numeric .npy arrays only"
            ) from None
        raise InputError(f"{path}: not a plain numeric .npy array ({text[:200]})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise InputError(f"{path}: is a .npz archive; give one .npy array per input")
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    return array


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
    if array.dtype.kind == "f" and np.dtype(tensor.dtype).kind in "biu" and not tensor.quantized:
        # Token ids, indices, flags: truncating floats would change the values silently.
        raise InputError(f"{where}: dtype {array.dtype} does not fit input {tensor.name!r} ({tensor.dtype})")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"{where}: holds NaN or infinite values")
    if array.dtype == np.uint8 and spec is not None:  # raw pixels, batch first: channels on axis 1 in NCHW
        return normalize(array, spec, channel_axis=1 if spec.layout == "NCHW" else -1)
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
