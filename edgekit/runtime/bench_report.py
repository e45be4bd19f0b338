"""What `edgekit bench` reports: one row per (model, threads), and how the rows were measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.runtime.interpreter import RuntimeInfo
from edgekit.runtime.stats import LatencyStats


@dataclass(frozen=True)
class BenchRow:
    """One model at one thread count."""

    model: str
    name: str
    quantization: str | None
    threads: int
    delegate_applied: bool | None
    load_ms: float
    first_invoke_ms: float
    latency_ms: LatencyStats
    throughput_per_s: float
    peak_rss_bytes: int | None
    macs: int | None
    gmacs_per_s: float | None
    budget_ms: float | None
    within_budget: bool | None
    # The raw invoke timings (read-only int64 ns), for plots; too long for the JSON report.
    timings_ns: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "name": self.name,
            "quantization": self.quantization,
            "threads": self.threads,
            "delegate_applied": self.delegate_applied,
            "load_ms": round(self.load_ms, 3),
            "first_invoke_ms": round(self.first_invoke_ms, 4),
            "latency_ms": self.latency_ms.to_dict(),
            "throughput_per_s": round(self.throughput_per_s, 2),
            "peak_rss_bytes": self.peak_rss_bytes,
            "macs": self.macs,
            "gmacs_per_s": None if self.gmacs_per_s is None else round(self.gmacs_per_s, 3),
            "budget_ms": self.budget_ms,
            "within_budget": self.within_budget,
        }


@dataclass(frozen=True)
class BenchReport:
    """The result of `edgekit bench`: one row per (model, threads), and how they were measured."""

    runtime: RuntimeInfo
    arch: str
    cores: int
    emulated: bool
    warmup: int
    repeat: int | None
    min_seconds: float | None
    budget_ms: float | None
    budget_enforced: bool
    peak_rss_scope: str
    rows: tuple[BenchRow, ...]
    inputs: str = "random"  # or the given sample (`--inputs`, `--input NAME=PATH`)

    @property
    def over_budget_rows(self) -> tuple[BenchRow, ...]:
        return tuple(row for row in self.rows if row.within_budget is False)

    @property
    def over_budget(self) -> bool:
        """True only when a budget was given explicitly, is enforced, and some row misses it."""
        return self.budget_ms is not None and self.budget_enforced and bool(self.over_budget_rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime.name,
            "runtime_version": self.runtime.version,
            "arch": self.arch,
            "cores": self.cores,
            "emulated": self.emulated,
            "warmup": self.warmup,
            "repeat": self.repeat,
            "min_seconds": self.min_seconds,
            "budget_ms": self.budget_ms,
            "budget_enforced": self.budget_enforced,
            "over_budget": self.over_budget,
            "peak_rss_scope": self.peak_rss_scope,
            "inputs": self.inputs,
            "rows": [row.to_dict() for row in self.rows],
        }


def row_label(row: BenchRow) -> str:
    """How a row is named in tables and plots: `name [mode] xTHREADS`."""
    mode = f" {row.quantization}" if row.quantization and row.quantization not in row.name else ""
    return f"{row.name}{mode} x{row.threads}"
