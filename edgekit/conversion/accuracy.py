"""Top-1 accuracy: what a conversion (or pruning) costs in the unit users care about, percentage points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgekit.conversion.inputs import Samples


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy of the source model and of a converted one on the same labelled inputs."""

    source: float
    converted: float
    samples: int

    @property
    def drop_pts(self) -> float:
        """How much accuracy the conversion lost, in percentage points (negative: it gained)."""
        return (self.source - self.converted) * 100.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": round(self.source, 4),
            "converted": round(self.converted, 4),
            "drop_pts": round(self.drop_pts, 2),
            "samples": self.samples,
        }


def output_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows of `outputs` whose arg-max is their label (class indices, or one-hot rows)."""
    labels = labels.reshape(len(labels), -1)
    labels = labels.argmax(axis=1) if labels.shape[1] > 1 else labels[:, 0]
    return float((outputs.reshape(len(outputs), -1).argmax(axis=1) == labels).mean())


def model_accuracy(predict: Callable[[np.ndarray], np.ndarray], data: Samples, batch: int = 256) -> float:
    """Top-1 accuracy of a model (its `predict` on a batch) on labelled samples, run in batches."""
    assert data.y is not None
    outputs = np.concatenate([np.asarray(predict(data.x[i : i + batch])) for i in range(0, len(data), batch)])
    return output_accuracy(outputs, data.y)
