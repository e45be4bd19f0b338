"""Latency statistics and budget verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


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
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(
            float(p50),
            float(p90),
            float(p99),
            float(ms.mean()),
            float(ms.std()),
            float(ms.min()),
            float(ms.max()),
            int(ms.size),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def within_budget(stats: LatencyStats, budget_ms: float) -> bool:
    """The budget is a tail-latency promise: the invoke p99 must not exceed it."""
    return stats.p99 <= budget_ms
