"""A copy of an image with a detector's boxes and labels drawn on it (`DIR/<stem>.boxes.png`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from edgekit.bundle.files import atomic_path
from edgekit.errors import InputError
from edgekit.runtime.detect import Detection

# One colour per class index (cycled): distinct on photos and on each other.
PALETTE = (
    (255, 56, 56),
    (72, 249, 10),
    (0, 194, 255),
    (255, 178, 29),
    (207, 210, 49),
    (146, 204, 23),
    (26, 147, 52),
    (0, 212, 187),
    (44, 153, 168),
    (52, 69, 147),
    (100, 115, 255),
    (132, 56, 255),
    (203, 56, 255),
    (255, 149, 200),
    (255, 157, 151),
    (61, 219, 134),
)
EXIF_ORIENTATION = 0x0112


def class_colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def upright_image(path: str | os.PathLike[str]):
    """The image as RGB, turned as its EXIF orientation says: the pixels the boxes refer to."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.load()
            if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except Exception as exc:  # Pillow's decoders raise many types on damaged files: all mean "unreadable"
        raise InputError(
            f"{path}: cannot read image ({' '.join(str(exc).split())[:200] or type(exc).__name__})"
        ) from None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) of the upright image: the `original_size` its detections are given in."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except Exception as exc:
        raise InputError(
            f"{path}: cannot read image ({' '.join(str(exc).split())[:200] or type(exc).__name__})"
        ) from None
    return (height, width) if turned else (width, height)


def draw_boxes(
    image_path: str | os.PathLike[str], detections: Sequence[Detection], out_path: str | os.PathLike[str]
) -> Path:
    """Write a copy of the image with each detection's box and "label score" drawn (PNG unless
    `out_path` names another format), atomically; returns `out_path`."""
    from PIL import ImageDraw, ImageFont

    image = upright_image(image_path)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    line = max(1, round(max(image.size) / 300))
    for detection in detections:
        colour = class_colour(detection.index)
        x1, y1, x2, y2 = detection.box
        draw.rectangle((x1, y1, max(x1, x2), max(y1, y2)), outline=colour, width=line)
        text = f"{detection.label if detection.label is not None else detection.index} {detection.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_height = bottom - top + 2
        # The label sits on the box's top edge, inside the image when the box touches its top.
        ty = y1 - text_height if y1 - text_height >= 0 else y1
        draw.rectangle((x1, ty, x1 + right - left + 3, ty + text_height), fill=colour)
        draw.text((x1 + 2, ty + 1 - top), text, fill=(255, 255, 255), font=font)
    out = Path(out_path)
    fmt = _format(out)
    with atomic_path(out) as tmp:
        image.save(tmp, format=fmt)
    return out


def _format(path: Path) -> str:
    from PIL import Image

    Image.init()
    return Image.EXTENSION.get(path.suffix.lower(), "PNG")
