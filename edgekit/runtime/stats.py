"""Latency statistics and budget verdicts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


def _percentile(ordered: np.ndarray, percent: float) -> float:
    """`np.percentile(..., method="linear")` of sorted values, computed the same way. numpy's own
    imports numpy.ma on first use (tens of ms), which `edgekit run` would pay on every start."""
    position = (ordered.size - 1) * (percent / 100)
    if position >= ordered.size - 1:
        return float(ordered[-1])
    low = math.floor(position)
    a, b = float(ordered[low]), float(ordered[low + 1])
    gamma = position - low
    if gamma >= 0.5:
        return b - (b - a) * (1 - gamma)
    return a + (b - a) * gamma


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of a series of timings, in milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    count: int

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int] | np.ndarray) -> LatencyStats:
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        if ms.size == 0:
            raise ValueError("no timings to summarize")
        ordered = np.sort(ms)
        return cls(
            _percentile(ordered, 50),
            _percentile(ordered, 90),
            _percentile(ordered, 99),
            float(ms.mean()),
            float(ms.std()),
            float(ordered[0]),
            float(ordered[-1]),
            int(ms.size),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def within_budget(stats: LatencyStats, budget_ms: float) -> bool:
    """The budget is a tail-latency promise: the invoke p99 must not exceed it."""
    return stats.p99 <= budget_ms
