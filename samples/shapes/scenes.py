"""Scenes for the shapes sample: squares, circles and triangles of random colours drawn on coarse noise,
with their boxes. Shared by train.py (training, evaluation, the demo images) and the tests."""

from __future__ import annotations

import numpy as np

CLASSES = ("square", "circle", "triangle")
SIZE = 96  # the model's input is SIZE x SIZE
MAX_OBJECTS = 3
NOISE_CELLS = 24  # the noise is drawn at 24x24 and enlarged: coarse enough to keep PNGs small


def scene(rng: np.random.Generator, width: int = SIZE, height: int = SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: uint8 pixels [height, width, 3], boxes [MAX_OBJECTS, 4] (x1, y1, x2, y2 in pixels, -1
    padded) and classes [MAX_OBJECTS] (-1 padded). Objects do not overlap; sizes scale with the image."""
    from PIL import Image, ImageDraw

    base = rng.uniform(40, 200, size=3)
    noise = rng.normal(0, 35, size=(NOISE_CELLS, NOISE_CELLS, 3)) + base
    background = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).resize((width, height), Image.NEAREST)
    draw = ImageDraw.Draw(background)
    boxes = np.full((MAX_OBJECTS, 4), -1.0, dtype=np.float32)
    classes = np.full(MAX_OBJECTS, -1, dtype=np.int64)
    unit = min(width, height) / SIZE
    placed = 0
    for _ in range(40):  # placement attempts
        if placed == rng.integers(1, MAX_OBJECTS + 1) or placed == MAX_OBJECTS:
            break
        side = rng.uniform(16, 38) * unit
        x1, y1 = rng.uniform(0, width - side), rng.uniform(0, height - side)
        box = np.array([x1, y1, x1 + side, y1 + side], dtype=np.float32)
        if any(_overlaps(box, other) for other in boxes[:placed]):
            continue
        kind = int(rng.integers(len(CLASSES)))
        colour = _colour(rng, base)
        x2, y2 = x1 + side, y1 + side
        if kind == 0:
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=colour)
        elif kind == 1:
            draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=colour)
        else:
            draw.polygon(((x1 + side / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)), fill=colour)
        boxes[placed], classes[placed] = box, kind
        placed += 1
    return np.asarray(background), boxes, classes


def scenes(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` scenes as the model sees them, stacked: half drawn at its size, half drawn at other sizes
    and aspect ratios then resized to it as edgekit's runtime resizes images (bilinear, no letterbox)."""
    parts = [scene(rng) if i % 2 == 0 else resized_scene(rng) for i in range(count)]
    return tuple(np.stack([p[i] for p in parts]) for i in range(3))


def resized_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from PIL import Image

    width, height = (int(v) for v in rng.integers(SIZE, 2 * SIZE + 16, 2))
    pixels, boxes, classes = scene(rng, width, height)
    resized = np.asarray(Image.fromarray(pixels).resize((SIZE, SIZE), Image.BILINEAR))
    scale = np.array([SIZE / width, SIZE / height, SIZE / width, SIZE / height], dtype=np.float32)
    return resized, np.where(classes[:, None] >= 0, boxes * scale, -1.0).astype(np.float32), classes


def _overlaps(a: np.ndarray, b: np.ndarray, margin: float = 2.0) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _colour(rng: np.random.Generator, background: np.ndarray) -> tuple[int, int, int]:
    """A saturated colour that stands out from the background's mean colour."""
    import colorsys

    while True:
        rgb = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))) * 255
        if np.abs(rgb - background).sum() > 150:
            return tuple(int(v) for v in rgb)
