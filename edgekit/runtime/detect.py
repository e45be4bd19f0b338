"""Detections from a detector's outputs, with boxes in the original image's pixels.

Two output formats are read (`manifest.postprocess["format"]`):
  yolo  one output `[1, 4+C, N]` or `[1, N, 4+C]`: per candidate a box as centre/size (cx, cy, w, h) then
        C class scores, the Ultralytics/YOLOv8 export convention; decoded here with a score threshold and
        class-wise non-maximum suppression. Boxes are in the input's pixels or normalized to 0-1
        (`postprocess["coordinates"]`; told apart by their values when the manifest does not say).
  ssd   the four outputs of `TFLite_Detection_PostProcess` (boxes `[1, N, 4]` as normalized ymin, xmin,
        ymax, xmax; classes `[1, N]`; scores `[1, N]`; count `[1]`): suppression is done in the model,
        so they are only thresholded and counted.
The runtime resizes an image to the input size without letterboxing, so undoing the resize is a scale
per axis (which leaves IoU unchanged: suppression can run in whichever space the boxes come in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgekit.bundle import MANIFEST_NAME, Manifest
from edgekit.errors import InputError, UsageError

FORMATS = ("yolo", "ssd")
COORDINATES = ("normalized", "pixels")
YOLO_LAYOUTS = ("4+C,N", "N,4+C")  # [1, 4+C, N] (Ultralytics' export) or [1, N, 4+C]
# The same layouts as the conversion half may name them.
LAYOUT_ALIASES = {"channels_first": "4+C,N", "channels_last": "N,4+C"}
# Centres of a normalized head stay within 0-1 (a little beyond at the edges); a pixel head's spread over
# the input's width and height. Inputs are never 2 pixels wide, so this tells them apart.
NORMALIZED_LIMIT = 2.0
NMS_BLOCK = 128  # candidates compared at once in NMS: a 128x128 matrix is cheap, a 2100x2100 one is not


@dataclass(frozen=True)
class Detection:
    """One detected object: its class, score and box (x1, y1, x2, y2) in the original image's pixels."""

    label: str | None
    index: int
    score: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "score": round(self.score, 6),
            "box": [round(v, 2) for v in self.box],
        }


def detection_format(outputs: Sequence[Any]) -> dict[str, Any] | None:
    """The `postprocess` record for a detector with these outputs, or None when they fit no format.

    `outputs` are shapes (tuples of ints; a leading None is a batch of one) or tensor descriptions
    (anything with `.shape`: `TensorSpec`, the conversion half's `TensorInfo`; a `.name` helps tell the
    SSD scores from its classes), in the model's output order. A YOLO-shaped output (rank 3, one
    small axis) is also what many non-detectors give: take it as a detector only when told (`--task
    detect`); the four SSD outputs are unambiguous. `coordinates` is left out for YOLO heads (shapes
    cannot tell it); decoding then tells it from the values."""
    shapes = [_static_shape(getattr(o, "shape", o)) for o in outputs]
    if any(shape is None for shape in shapes):
        return None
    names = [str(getattr(o, "name", "")) for o in outputs]
    if len(shapes) == 1:
        return _yolo_format(shapes[0])
    if len(shapes) == 4:
        return _ssd_format(shapes, names)
    return None


def _static_shape(shape: Sequence[int | None]) -> tuple[int, ...] | None:
    """A shape with its batch axis as 1 when unknown (a source model's `None`); None if any other axis is."""
    dims = [1 if d is None and i == 0 else d for i, d in enumerate(shape)]
    return None if any(d is None for d in dims) else tuple(int(d) for d in dims)


def _yolo_format(shape: tuple[int, ...]) -> dict[str, Any] | None:
    if len(shape) != 3 or shape[0] != 1:
        return None
    a, b = shape[1:]
    if 5 <= a < b:
        return {"format": "yolo", "layout": "4+C,N", "classes": a - 4, "candidates": b}
    if 5 <= b < a:
        return {"format": "yolo", "layout": "N,4+C", "classes": b - 4, "candidates": a}
    return None


def _ssd_format(shapes: list[tuple[int, ...]], names: list[str]) -> dict[str, Any] | None:
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[0] == 1 and s[2] == 4]
    if len(boxes) != 1:
        return None
    n = shapes[boxes[0]][1]
    rows = [i for i, s in enumerate(shapes) if s == (1, n)]
    counts = [i for i, s in enumerate(shapes) if s in ((1,), (1, 1)) and i not in rows]
    if len(rows) != 2 or len(counts) != 1:
        return None
    # TFLite_Detection_PostProcess names its outputs :0 boxes, :1 classes, :2 scores, :3 count and lists
    # them in that order; exporters that reorder them usually keep those names or say "score"/"class".
    classes, scores = rows
    if _is_scores(names[classes]) and not _is_scores(names[scores]):
        classes, scores = scores, classes
    return {
        "format": "ssd",
        "coordinates": "normalized",
        "boxes": boxes[0],
        "classes": classes,
        "scores": scores,
        "count": counts[0],
    }


def _is_scores(name: str) -> bool:
    lower = name.lower()
    return "score" in lower or lower.endswith(":2")


def detections(
    outputs: Sequence[np.ndarray],
    manifest: Manifest,
    original_size: tuple[int, int] | None = None,
    conf: float = 0.25,
    iou: float = 0.45,
    max_detections: int = 100,
    labels: Sequence[str] | None = None,
) -> list[Detection]:
    """A detector's outputs (dequantized, in model order) → its detections, best first.

    `original_size` is the (width, height) of the image the input was made from (boxes come back in
    its pixels); None (or a zero size) gives boxes in the model input's pixels. `labels` name the
    class indices (the labels of the scores output: a YOLO head's own, an SSD model's classes output's)."""
    if not 0.0 <= conf <= 1.0:
        raise UsageError(f"--conf must be from 0 to 1, got {conf}")
    if not 0.0 <= iou <= 1.0:
        raise UsageError(f"--iou must be from 0 to 1, got {iou}")
    if max_detections < 1:
        raise UsageError(f"--max-detections must be at least 1, got {max_detections}")
    settings = postprocess_settings(manifest)
    if len(outputs) != len(manifest.outputs):
        raise InputError(f"detect: the model gave {len(outputs)} outputs, the manifest lists {len(manifest.outputs)}")
    input_width, input_height = input_size(manifest)
    known = original_size is not None and min(original_size) > 0  # (0, 0) stands for "not known" too
    width, height = original_size if known else (input_width, input_height)
    if settings["format"] == "yolo":
        boxes, scores, classes, normalized = _yolo_candidates(outputs[0], settings, conf)
        keep = non_max_suppression(boxes, scores, classes, iou, max_detections)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    else:
        boxes, scores, classes = _ssd_candidates(outputs, settings, conf, max_detections)
        normalized = settings.get("coordinates", "normalized") == "normalized"
    if not normalized:
        boxes = boxes / np.array([input_width, input_height, input_width, input_height], dtype=np.float32)
    boxes = boxes * np.array([width, height, width, height], dtype=np.float32)
    boxes = np.clip(boxes, 0.0, np.array([width, height, width, height], dtype=np.float32))
    names = list(labels or ())
    return [
        Detection(
            names[c] if 0 <= c < len(names) else None,
            int(c),
            float(s),
            (float(b[0]), float(b[1]), float(b[2]), float(b[3])),
        )
        for b, s, c in zip(boxes, scores, classes.tolist())
    ]


def postprocess_settings(manifest: Manifest) -> dict[str, Any]:
    """The manifest's `postprocess` for a detector, checked; inferred from the outputs when it is empty."""
    where = f"{MANIFEST_NAME}: postprocess"
    settings = dict(manifest.postprocess) if manifest.postprocess.get("format") else None
    if settings is None:
        settings = detection_format(manifest.outputs)
        if settings is None:
            shapes = ", ".join(str(list(o.shape)) for o in manifest.outputs)
            raise InputError(
                f"{where}: no detection format recorded, and the outputs ({shapes}) are neither a YOLO head "
                "([1, 4+C, N] or [1, N, 4+C]) nor the four TFLite_Detection_PostProcess outputs"
            )
    kind = settings.get("format")
    if kind not in FORMATS:
        raise InputError(f"{where}.format: expected one of {', '.join(FORMATS)}, got {kind!r}")
    coordinates = settings.get("coordinates")
    if coordinates is not None and coordinates not in COORDINATES:
        raise InputError(f"{where}.coordinates: expected one of {', '.join(COORDINATES)}, got {coordinates!r}")
    count = len(manifest.outputs)
    if kind == "yolo":
        shape = tuple(manifest.outputs[0].shape)
        inferred = detection_format([shape]) if count == 1 else None
        layout = settings.get("layout") or (inferred or {}).get("layout")
        layout = LAYOUT_ALIASES.get(layout, layout)
        if layout is not None and layout not in YOLO_LAYOUTS:
            raise InputError(f"{where}.layout: expected one of {', '.join(YOLO_LAYOUTS)}, got {layout!r}")
        attributes = None if layout is None or len(shape) != 3 else shape[1 if layout == "4+C,N" else 2]
        if count != 1 or shape[0] != 1 or attributes is None or attributes < 5:
            shapes = ", ".join(str(list(o.shape)) for o in manifest.outputs)
            raise InputError(f"{where}: a yolo detector has one output [1, 4+C, N] or [1, N, 4+C], not {shapes}")
        settings["layout"] = layout
    else:
        inferred = detection_format(manifest.outputs)
        if count != 4 or inferred is None or inferred["format"] != "ssd":
            shapes = ", ".join(str(list(o.shape)) for o in manifest.outputs)
            raise InputError(
                f"{where}: an ssd detector has the four TFLite_Detection_PostProcess outputs, not {shapes}"
            )
        settings = {**inferred, **settings}
        for key in ("boxes", "classes", "scores", "count"):
            value = settings.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < count:
                raise InputError(f"{where}.{key}: expected an output index from 0 to {count - 1}, got {value!r}")
    return settings


def input_size(manifest: Manifest) -> tuple[int, int]:
    """(width, height) of the image the model sees: the first image input's."""
    for spec in manifest.inputs:
        if spec.preprocess is not None:
            height, width = spec.preprocess.size
            return width, height
    for spec in manifest.inputs:
        shape = spec.shape
        if len(shape) == 4:
            if shape[1] in (1, 3) and shape[3] not in (1, 3):  # NCHW
                return shape[3], shape[2]
            return shape[2], shape[1]
    raise InputError(f"{MANIFEST_NAME}: a detector needs an image input (rank 4), none found")


def _yolo_candidates(
    output: np.ndarray, settings: dict[str, Any], conf: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Candidates scoring at least `conf`: boxes (x1, y1, x2, y2), best score, its class; and whether
    the boxes are normalized. Reductions run along the output's own memory order (a reduction across a
    transposed view is several times slower)."""
    pred = np.asarray(output, dtype=np.float32)
    pred = pred.reshape(pred.shape[-2:])
    if settings["layout"] == "4+C,N":
        best = pred[4:].max(axis=0)
        coordinates = settings.get("coordinates") or guess_coordinates(pred[:2])
        chosen = np.flatnonzero((best >= conf) & np.isfinite(pred[:4]).all(axis=0))
        boxes, classes = pred[:4, chosen].T, pred[4:, chosen].argmax(axis=0)
    else:
        best = pred[:, 4:].max(axis=1)
        coordinates = settings.get("coordinates") or guess_coordinates(pred[:, :2])
        chosen = np.flatnonzero((best >= conf) & np.isfinite(pred[:, :4]).all(axis=1))
        boxes, classes = pred[chosen, :4], pred[chosen, 4:].argmax(axis=1)
    return centre_to_corners(boxes), best[chosen], classes, coordinates == "normalized"


def guess_coordinates(centres: np.ndarray) -> str:
    """ "normalized" or "pixels" for a YOLO head, from all its candidates' box centres (not only the
    confident ones: the grid spreads them over the whole input)."""
    centres = np.abs(centres[np.isfinite(centres)])
    return "normalized" if centres.size == 0 or centres.max() <= NORMALIZED_LIMIT else "pixels"


def centre_to_corners(boxes: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h) → (x1, y1, x2, y2)."""
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def _ssd_candidates(
    outputs: Sequence[np.ndarray], settings: dict[str, Any], conf: float, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.asarray(outputs[settings["boxes"]], dtype=np.float32).reshape(-1, 4)
    classes = np.asarray(outputs[settings["classes"]], dtype=np.float32).reshape(-1)
    scores = np.asarray(outputs[settings["scores"]], dtype=np.float32).reshape(-1)
    if _whole(scores) and not _whole(classes):  # the two [1, N] outputs the other way round
        classes, scores = scores, classes
    count = np.asarray(outputs[settings["count"]], dtype=np.float32).reshape(-1)
    n = int(np.clip(np.nan_to_num(count[0]) if count.size else 0, 0, min(len(boxes), len(scores))))
    boxes, classes, scores = boxes[:n], classes[:n], scores[:n]
    chosen = np.flatnonzero((scores >= conf) & np.isfinite(boxes).all(axis=1) & np.isfinite(classes))
    chosen = chosen[np.argsort(-scores[chosen], kind="stable")][:limit]
    corners = boxes[chosen][:, [1, 0, 3, 2]]  # ymin, xmin, ymax, xmax → x1, y1, x2, y2
    return corners, scores[chosen], np.rint(classes[chosen]).astype(np.int64)


def _whole(values: np.ndarray) -> bool:
    return bool(values.size) and bool(np.all(values == np.rint(values)))


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, limit: int
) -> np.ndarray:
    """Indices of the boxes kept by greedy class-wise NMS, best score first, at most `limit`.

    A box is dropped when it overlaps a better box of the same class with IoU above `iou`. Classes are
    kept apart by shifting each class's boxes to a region of their own, so one pass serves them all.
    The candidates are taken in blocks of NMS_BLOCK, best first: a block's boxes are checked against every box kept so
    far and against each other in a few matrix operations, leaving only a cheap walk over the block in
    Python; it stops as soon as `limit` boxes are kept. (A loop of numpy calls per kept box costs more: at
    these sizes each call's overhead outweighs its work.)"""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes[order].astype(np.float32) + (classes[order].astype(np.float32) * np.float32(span))[:, None]
    corners = np.ascontiguousarray(shifted.T)  # x1, y1, x2, y2 rows
    areas = np.maximum(corners[2] - corners[0], 0) * np.maximum(corners[3] - corners[1], 0)
    kept: list[int] = []  # positions in `order`
    for start in range(0, len(order), NMS_BLOCK):
        block = np.arange(start, min(start + NMS_BLOCK, len(order)))
        if kept:
            block = block[~_suppressed(corners, areas, np.asarray(kept), block, iou).any(axis=0)]
        if block.size == 0:
            continue
        within = _suppressed(corners, areas, block, block, iou)
        alive = np.ones(block.size, dtype=bool)
        for j in range(block.size):
            if alive[j]:
                kept.append(int(block[j]))
                if len(kept) == limit:
                    return order[kept]
                alive &= ~within[j]
    return order[kept]


def _suppressed(corners: np.ndarray, areas: np.ndarray, rows: np.ndarray, cols: np.ndarray, iou: float) -> np.ndarray:
    """[rows, cols] booleans: box `row` overlaps box `col` with IoU above `iou` (inter > iou * union)."""
    a, b = corners[:, rows], corners[:, cols]
    width = np.minimum(a[2][:, None], b[2][None]) - np.maximum(a[0][:, None], b[0][None])
    height = np.minimum(a[3][:, None], b[3][None]) - np.maximum(a[1][:, None], b[1][None])
    np.maximum(width, 0, out=width)
    np.maximum(height, 0, out=height)
    inter = width * height
    return inter > iou * (areas[rows][:, None] + areas[cols][None] - inter)
