"""A segmenter's output as a PNG mask at the image's size (`DIR/<stem>.mask.png`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekit.bundle.files import atomic_path
from edgekit.errors import InputError

THRESHOLD = 0.5  # one channel: foreground where the output is above it
MAX_PALETTE_CLASSES = 256


def mask_pixels(output: np.ndarray) -> tuple[np.ndarray, bool]:
    """Output `[1, H, W, 1]` or `[1, H, W, C]` (or without the batch axis) → (uint8 mask `[H, W]`,
    whether it holds class indices). One channel: 255 above 0.5, else 0; several: argmax per pixel."""
    values = np.asarray(output)
    if values.ndim == 4 and values.shape[0] == 1:
        values = values[0]
    if values.ndim == 2:
        values = values[..., None]
    if values.ndim != 3 or min(values.shape) < 1:
        raise InputError(f"segment: expected an output [1, H, W, C], got shape {list(np.shape(output))}")
    channels = values.shape[-1]
    if channels == 1:
        return np.where(values[..., 0] > THRESHOLD, 255, 0).astype(np.uint8), False
    if channels > MAX_PALETTE_CLASSES:
        raise InputError(f"segment: {channels} classes do not fit a PNG palette (at most {MAX_PALETTE_CLASSES})")
    return values.argmax(axis=-1).astype(np.uint8), True


def palette(classes: int) -> list[int]:
    """Flat RGB palette: class 0 (background) black, the others spread around the colour wheel."""
    import colorsys

    colours = [0, 0, 0]
    for index in range(1, classes):
        hue = (index * 0.618033988749895) % 1.0  # golden ratio: neighbouring classes differ clearly
        colours += [round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.75, 1.0)]
    return colours


def save_mask(output: np.ndarray, original_size: tuple[int, int] | None, out_path: str | os.PathLike[str]) -> Path:
    """Write the mask as a PNG of the image's (width, height) (the output's own size when None),
    resized nearest-neighbour so class indices stay whole; one channel: black and white (L), several:
    a palette image whose pixel values are the class indices. Atomic; returns `out_path`."""
    from PIL import Image

    pixels, indexed = mask_pixels(output)
    if indexed:
        image = Image.fromarray(pixels, "P")
        image.putpalette(palette(int(np.asarray(output).shape[-1])))
    else:
        image = Image.fromarray(pixels, "L")
    if original_size is not None and tuple(original_size) != image.size:
        width, height = original_size
        if width < 1 or height < 1:
            raise InputError(f"segment: image size must be positive, got {width}x{height}")
        image = image.resize((int(width), int(height)), Image.NEAREST)
    out = Path(out_path)
    with atomic_path(out) as tmp:
        image.save(tmp, format="PNG")
    return out
