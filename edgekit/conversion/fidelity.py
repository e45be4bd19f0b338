"""How close a converted model's outputs are to its source's, output by output: cosine, max and mean
absolute error, top-1 agreement for a classifier output, and for a detector the share of source boxes a
converted box matches (IoU >= 0.5, same class). Running sums, one sample at a time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

import numpy as np

BOX_IOU = 0.5  # a converted box matches a source box at this overlap, with the same class
BOX_SCORE = 0.25  # detections below this score are not compared (the runtime's --conf default)


@dataclass(frozen=True)
class Fidelity:
    """Agreement of converted outputs with source outputs over `samples` inputs, for one output.

    `reference` says what the converted model was compared with: its "source" model (for ONNX, what ran
    it: "onnxruntime X.Y"), or "self" for an existing `.tflite` that has nothing else to be compared with."""

    samples: int
    max_abs_error: float
    mean_abs_error: float
    cosine: float
    top1_agreement: float | None
    synthetic: bool = False
    output: str = ""
    reference: str = "source"
    box_match: float | None = None  # detect: share of source boxes a converted box matches
    # Raw outputs: the worst channel's (last axis) RMS error over its RMS value, over all samples, so that
    # a channel of small values packed beside large ones (0-1 scores beside boxes in pixels) cannot hide
    # in the whole tensor's cosine (which a uniform scale error would not even move).
    channel_error: float | None = None
    worst_channel: int | None = None

    @property
    def finite(self) -> bool:
        return bool(np.isfinite([self.max_abs_error, self.mean_abs_error, self.cosine]).all())

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | None:  # NaN/inf (a broken model) as null: manifests stay valid JSON
            return round(value, 6) if np.isfinite(value) else None

        data = {
            "output": self.output,
            "samples": self.samples,
            "max_abs_error": number(self.max_abs_error),
            "mean_abs_error": number(self.mean_abs_error),
            "cosine": number(self.cosine),
            "top1_agreement": None if self.top1_agreement is None else round(self.top1_agreement, 4),
            "synthetic": self.synthetic,
            "reference": self.reference,
        }
        if self.box_match is not None:
            data["box_match"] = round(self.box_match, 4)
        if self.channel_error is not None:
            data["channel_error"] = number(self.channel_error)
            data["worst_channel"] = self.worst_channel
        return data


def compare_outputs(
    reference: np.ndarray,
    converted: Iterable[np.ndarray],
    classifier: bool,
    synthetic: bool,
    output: str = "",
    reference_kind: str = "source",
    labels: np.ndarray | None = None,
    channels: bool = False,
) -> tuple[Fidelity, float | None]:
    """Fidelity of one output's `converted` values (an array, or one sample at a time) against
    `reference`; with `labels`, also the converted outputs' top-1 accuracy; with `channels`, the worst
    channel's relative error (last axis, over all samples)."""
    width = reference.shape[-1] if channels and reference.ndim >= 2 and reference.shape[-1] > 1 else 0
    sums = np.zeros((2, width))  # per channel: |source - converted|², |source|²
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    max_error = error_sum = cosine_sum = 0.0
    agree = correct = count = 0
    finite = True
    for row, out in zip(ref, converted):
        out = np.asarray(out, dtype=np.float64).reshape(-1)
        error = np.abs(row - out)
        finite = finite and bool(np.isfinite(error).all())
        max_error = max(max_error, float(error.max()))
        error_sum += float(error.sum())
        norm = float(np.linalg.norm(row) * np.linalg.norm(out))
        with np.errstate(invalid="ignore"):  # NaN/inf outputs give a NaN cosine, which judge() refuses
            cosine_sum += float(row @ out) / max(norm, 1e-30) if norm > 0 else 1.0
        agree += int(row.argmax() == out.argmax())
        if width and len(out) == len(row):
            a, b = row.reshape(-1, width), out.reshape(-1, width)
            sums += [((a - b) ** 2).sum(axis=0), (a * a).sum(axis=0)]
        if labels is not None:
            correct += int(out.argmax() == labels[count])
        count += 1
    fidelity = Fidelity(
        count,
        max_error if finite else float("nan"),
        error_sum / max(count * ref.shape[1], 1),
        cosine_sum / max(count, 1),
        agree / count if classifier and count else None,
        synthetic,
        output,
        reference_kind,
    )
    if width and count:
        errors = channel_errors(*sums)
        fidelity = replace(fidelity, channel_error=float(errors.max()), worst_channel=int(errors.argmax()))
    return fidelity, (correct / count if labels is not None and count else None)


def channel_errors(error_sq: np.ndarray, value_sq: np.ndarray) -> np.ndarray:
    """RMS error over RMS value per channel; a channel the source never sets (all zeros) is not judged."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.sqrt(error_sq / value_sq)
    return np.where(value_sq > 0, np.nan_to_num(ratio, nan=np.inf, posinf=np.inf), 0.0)


def worst(fidelities: Sequence[Fidelity]) -> Fidelity:
    """The output that agrees least with its source: lowest cosine (NaN first), then lowest agreement."""

    def rank(f: Fidelity) -> tuple[float, float, float]:
        cosine = f.cosine if np.isfinite(f.cosine) else float("-inf")
        if f.channel_error is not None:
            cosine = min(cosine, 1.0 - f.channel_error)
        agreement = 1.0 if f.top1_agreement is None else f.top1_agreement
        boxes = 1.0 if f.box_match is None else f.box_match
        return (min(agreement, boxes), cosine, -f.max_abs_error)

    return min(fidelities, key=rank)


def detections(outputs: Sequence[np.ndarray], postprocess: dict[str, Any]) -> list[tuple[int, np.ndarray]]:
    """(class, box) pairs of one sample's detector outputs (no batch axis), above BOX_SCORE: the SSD
    outputs as they are, a YOLO head through the runtime's class-wise non-maximum suppression."""
    from edgekit.runtime.detect import centre_to_corners, non_max_suppression

    if postprocess.get("format") == "ssd":
        boxes = next(o for o in outputs if o.ndim == 2 and o.shape[-1] == 4)
        flat = [o.reshape(-1) for o in outputs if o.ndim == 1 and o.size == len(boxes)]
        classes, scores = (flat[0], flat[1]) if len(flat) == 2 else (np.zeros(len(boxes)), np.ones(len(boxes)))
        return [(int(c), b) for c, s, b in zip(classes, scores, boxes) if s >= BOX_SCORE]
    head = outputs[0]
    if postprocess.get("layout") in ("4+C,N", "channels_first"):
        head = head.T
    scores = head[:, 4:]
    classes, best = scores.argmax(axis=1), scores.max(axis=1)
    keep = np.flatnonzero(best >= BOX_SCORE)
    boxes = centre_to_corners(head[keep, :4])
    chosen = non_max_suppression(boxes, best[keep], classes[keep], 0.45, len(keep) or 1)
    return [(int(classes[keep][i]), boxes[i]) for i in chosen]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = np.clip(a[2:] - a[:2], 0, None).prod() + np.clip(b[2:] - b[:2], 0, None).prod() - inter
    return float(inter / union) if union > 0 else 0.0


def box_match(
    reference: Sequence[Sequence[np.ndarray]], converted: Sequence[Sequence[np.ndarray]], postprocess: dict[str, Any]
) -> float | None:
    """Share of the source's boxes (over all samples) matched by a converted box: IoU >= BOX_IOU, same
    class. None when the source finds no box at all."""
    found = matched = 0
    for ref, out in zip(reference, converted):
        theirs = detections(out, postprocess)
        for cls, box in detections(ref, postprocess):
            found += 1
            matched += any(c == cls and iou(box, b) >= BOX_IOU for c, b in theirs)
    return matched / found if found else None
