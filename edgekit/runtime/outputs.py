"""What a model said about one sample: every output summarized in model order, top-k for classifier
outputs, detections for `detect`; and `--save-outputs`' files.

The task's own decoding lives next door (detect.py, draw.py, masks.py) and is imported only when a
bundle's task needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.bundle import Bundle, Manifest, TensorSpec
from edgekit.errors import InputError
from edgekit.runtime.samples import PreparedSample, safe_name

# `values` holds the first few dequantized values; `size` says how many there are in all.
SHOWN_VALUES = 16


@dataclass(frozen=True)
class TopK:
    index: int
    label: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "score": round(self.score, 6)}


@dataclass(frozen=True)
class OutputSummary:
    """One output tensor of one inference, dequantized: its first values, and top-k for a classifier."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    values: tuple[float, ...]
    size: int
    top_k: tuple[TopK, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "values": [round(v, 6) for v in self.values],
        }
        if self.size > len(self.values):
            data["size"] = self.size
        if self.top_k is not None:
            data["top_k"] = [t.to_dict() for t in self.top_k]
        return data


@dataclass(frozen=True)
class InputResult:
    """What the model said about one sample."""

    input: str
    outputs: tuple[OutputSummary, ...] = ()
    top_k: tuple[TopK, ...] | None = None  # a single-output classifier's, at the top as in edgekit 0.1
    detections: tuple[Any, ...] | None = None  # task detect: edgekit.runtime.detect.Detection

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"input": self.input}
        if self.top_k is not None:
            data["top_k"] = [t.to_dict() for t in self.top_k]
        data["outputs"] = [o.to_dict() for o in self.outputs]
        if self.detections is not None:
            data["detections"] = [d.to_dict() for d in self.detections]
        return data


def read_labels(bundle: Bundle, name: str | None) -> list[str] | None:
    if name is None:
        return None
    path = bundle.path / name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read labels ({exc})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def is_classifier(spec: TensorSpec, labels: Sequence[str] | None, manifest: Manifest) -> bool:
    """Rank 2 (batch, classes), labels given for it, or the one output of a `classify` bundle."""
    single_classify = manifest.task == "classify" and len(manifest.outputs) == 1
    return len(spec.shape) == 2 or labels is not None or single_classify


def top_k(scores: np.ndarray, labels: Sequence[str] | None, k: int) -> tuple[TopK, ...]:
    scores = scores.reshape(-1)
    count = max(1, min(k, scores.size))
    best = np.argsort(-scores, kind="stable")[:count].tolist()
    values = scores[best].tolist()
    return tuple(TopK(i, labels[i] if labels and i < len(labels) else None, v) for i, v in zip(best, values))


@dataclass(frozen=True)
class PostProcess:
    """Everything a bundle's outputs are read with: labels per output and the task's settings."""

    manifest: Manifest
    labels: tuple[list[str] | None, ...]
    top_k: int
    conf: float
    iou: float
    max_detections: int

    @classmethod
    def of(cls, bundle: Bundle, top_k: int, conf: float, iou: float, max_detections: int) -> PostProcess:
        manifest = bundle.manifest
        labels = tuple(read_labels(bundle, manifest.output_labels(i)) for i in range(len(manifest.outputs)))
        return cls(manifest, labels, top_k, conf, iou, max_detections)

    def summarize(self, sample: PreparedSample, outputs: list[np.ndarray]) -> InputResult:
        """Outputs (dequantized, model order) → the result `run` reports for the sample."""
        specs = self.manifest.outputs
        summaries = []
        for y, spec, labels in zip(outputs, specs, self.labels):
            flat = y.reshape(-1)
            ranked = top_k(flat, labels, self.top_k) if is_classifier(spec, labels, self.manifest) else None
            summaries.append(
                OutputSummary(
                    spec.name,
                    tuple(y.shape),
                    spec.dtype,
                    tuple(flat[:SHOWN_VALUES].tolist()),
                    int(flat.size),
                    ranked,
                )
            )
        single = summaries[0].top_k if len(summaries) == 1 else None
        detections = None
        if self.manifest.task == "detect":
            from edgekit.runtime.detect import detections as decode

            labels = next((names for names in self.labels if names), None)  # the class names' output
            found = decode(
                outputs, self.manifest, sample.original_size, self.conf, self.iou, self.max_detections, labels=labels
            )
            detections = tuple(found)
        return InputResult(sample.name, tuple(summaries), single, detections)

    def save(self, folder: Path, stem: str, sample: PreparedSample, outputs: list[np.ndarray], result: InputResult):
        """`--save-outputs`: every output in full as float32 `.npy`, and the task's picture."""
        import io

        from edgekit.bundle.files import write_bytes_atomically

        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
        for y, spec in zip(outputs, self.manifest.outputs):
            content = io.BytesIO()
            np.save(content, np.asarray(y, dtype=np.float32), allow_pickle=False)
            write_bytes_atomically(folder / f"{safe_name(stem)}.{safe_name(spec.name)}.npy", content.getvalue())
        if self.manifest.task == "detect" and sample.image is not None and result.detections is not None:
            from edgekit.runtime.draw import draw_boxes

            draw_boxes(sample.image, list(result.detections), folder / f"{safe_name(stem)}.boxes.png")
        if self.manifest.task == "segment":
            from edgekit.runtime.masks import save_mask

            mask = next((y for y in outputs if y.ndim == 4), outputs[0])
            save_mask(mask, sample.original_size or mask.shape[2:0:-1], folder / f"{safe_name(stem)}.mask.png")


def unique_stems(stems: Sequence[str]) -> list[str]:
    """Two samples called `a` (from two folders) save as `a` and `a-2`, never over each other."""
    seen: dict[str, int] = {}
    unique = []
    for stem in stems:
        count = seen.get(stem, 0) + 1
        seen[stem] = count
        unique.append(stem if count == 1 else f"{stem}-{count}")
    return unique
