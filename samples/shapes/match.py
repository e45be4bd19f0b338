"""How well detections agree with true boxes or with another model's detections (IoU >= 0.5, same class)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scenes import SIZE


def scene_manifest(coordinates: str = "normalized"):
    """A minimal detect manifest for the shapes model: what decoding needs (outputs, input size, format)."""
    from edgekit.bundle import FileEntry, Manifest, Preprocess, TensorSpec

    return Manifest(
        name="shapes",
        created_by="samples/shapes",
        target={},
        quantization="float32",
        inputs=(TensorSpec("image", (1, SIZE, SIZE, 3), "float32", preprocess=Preprocess((SIZE, SIZE), "RGB")),),
        outputs=(TensorSpec("output0", (1, 7, 144), "float32"),),
        files={"model.tflite": FileEntry("0" * 64, 0)},
        task="detect",
        postprocess={"format": "yolo", "layout": "4+C,N", "coordinates": coordinates},
    )


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(found, boxes: np.ndarray, classes: np.ndarray, threshold: float = 0.5) -> int:
    """How many of the true boxes a detection matches (IoU >= threshold, same class), each used once."""
    used: set[int] = set()
    hits = 0
    for box, kind in zip(boxes, classes):
        best, best_iou = None, threshold
        for index, detection in enumerate(found):
            if index in used or detection.index != int(kind):
                continue
            overlap = iou(detection.box, box)
            if overlap >= best_iou:
                best, best_iou = index, overlap
        if best is not None:
            used.add(best)
            hits += 1
    return hits
