"""Top-1 accuracy: what a conversion (or pruning) costs in the unit users care about, percentage points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from edgekit.conversion.inputs import Samples, take


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


def model_accuracy(
    predict: Callable[[Any], Any], data: Samples, output_names: Sequence[str] = (), batch: int = 256
) -> float:
    """Top-1 accuracy of a model on labelled samples, run in batches: `predict` takes inputs by name and
    answers one array (one output) or a list (model order, named by `output_names`). The first
    labelled output is measured (the classifier's)."""
    assert data.y
    name, labels = next(iter(data.y.items()))
    index = list(output_names).index(name) if name in output_names else 0
    parts = []
    for i in range(0, len(data), batch):
        answer = predict(take(data.x, slice(i, i + batch)))
        parts.append(np.asarray(answer[index] if isinstance(answer, (list, tuple)) else answer))
    return output_accuracy(np.concatenate(parts), labels)
