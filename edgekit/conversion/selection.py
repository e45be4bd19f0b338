"""`--quantize auto`: for each target, the fastest mode that passes the checks, measured on this machine.

Which mode is fastest is not a table lookup: under XNNPACK on x86, float16 and dynamic-range models are
size optimizations that run no faster than float32 (dynamic-range runs slower), int8 runs about twice as
fast on a MobileNet but not on a tiny model where invoke overhead dominates, and int16x8 runs on
reference kernels. So every candidate is timed, through the same Session and `time_invokes` that
`edgekit run` uses, with the target's thread count (capped at this machine's cores). Candidates are timed
in interleaved rounds, so a burst of load on a shared machine hits all of them rather than one.

Ranking: lowest median (p50) invoke latency among the modes that pass the checks; modes within
TIE_TOLERANCE of the fastest count as tied, and the smallest model wins a tie.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgekit.bundle import open_bundle
from edgekit.conversion.verify import Verdict
from edgekit.runtime.preprocess import quantize
from edgekit.runtime.session import Session, time_invokes
from edgekit.runtime.stats import LatencyStats
from edgekit.targets import Target

TIE_TOLERANCE = 0.05  # p50 within 5% of the fastest: a tie on a shared machine's noise
ROUNDS = 3
ROUND_SECONDS = 0.25  # timed invokes per candidate per round
MIN_REPEAT = 5
MAX_REPEAT = 200
WARMUP = 3


@dataclass(frozen=True)
class Candidate:
    """One mode considered for one target, side by side with the others."""

    mode: str
    bytes: int | None
    accuracy: float | None
    agreement: float | None
    p50_ms: float | None
    p99_ms: float | None
    threads: int
    chosen: bool
    reason: str
    passed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "bytes": self.bytes,
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "agreement": None if self.agreement is None else round(self.agreement, 4),
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 4),
            "p99_ms": None if self.p99_ms is None else round(self.p99_ms, 4),
            "threads": self.threads,
            "passed": self.passed,
            "chosen": self.chosen,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Trial:
    """What selection needs to know about one converted mode (or why it has no model)."""

    mode: str
    bytes: int | None
    verdict: Verdict | None
    failure: str | None = None


def machine_threads(target: Target) -> int:
    """The target's thread count, capped at this machine's cores: more threads than cores only adds
    contention to the measurement."""
    return max(1, min(target.threads, os.cpu_count() or 1))


def measure_latencies(
    bundles: Mapping[str, Path],
    thread_counts: Sequence[int],
    sample: np.ndarray,
    progress: Callable[[str], None] | None = None,
) -> dict[tuple[str, int], LatencyStats]:
    """Invoke latency of each bundle (mode → folder) at each thread count, timed in interleaved rounds
    on one real input `sample` (float32, one sample without the batch axis)."""
    timings: dict[tuple[str, int], list[np.ndarray]] = {}
    with contextlib.ExitStack() as stack:
        sessions = {}
        for mode, path in bundles.items():
            opened = stack.enter_context(open_bundle(path))
            for threads in sorted(set(thread_counts)):
                sessions[(mode, threads)] = Session(opened, threads=threads)
        tensors = {key: quantize(sample[None].astype(np.float32), s.input_spec) for key, s in sessions.items()}
        repeats = {}
        for key, session in sessions.items():
            first = time_invokes(session, tensors[key], WARMUP, MIN_REPEAT)
            seconds = float(np.median(first)) / 1e9
            repeats[key] = int(np.clip(ROUND_SECONDS / max(seconds, 1e-9), MIN_REPEAT, MAX_REPEAT))
            timings[key] = []
        for round_index in range(ROUNDS):
            for key, session in sessions.items():
                timings[key].append(time_invokes(session, tensors[key], 1, repeats[key]))
            if progress:
                progress(f"timed round {round_index + 1}/{ROUNDS}")
    return {key: LatencyStats.from_ns(np.concatenate(parts)) for key, parts in timings.items()}


def choose_mode(
    target: Target,
    trials: Mapping[str, Trial],
    latencies: Mapping[tuple[str, int], LatencyStats],
    allow_degraded: bool = False,
) -> tuple[str | None, tuple[Candidate, ...]]:
    """The chosen mode for one target (None when no candidate passes and degraded models are not
    allowed) and every candidate with the reason it was or was not chosen."""
    threads = machine_threads(target)
    rows: dict[str, dict[str, Any]] = {}
    for mode in target.modes:
        trial = trials.get(mode)
        stats = latencies.get((mode, threads))
        verdict = trial.verdict if trial else None
        rows[mode] = {
            "mode": mode,
            "bytes": trial.bytes if trial else None,
            "accuracy": verdict.accuracy.converted if verdict and verdict.accuracy else None,
            "agreement": verdict.fidelity.top1_agreement if verdict else None,
            "p50_ms": stats.p50 if stats else None,
            "p99_ms": stats.p99 if stats else None,
            "threads": threads,
            "passed": bool(verdict and verdict.passed and stats),
        }
        if trial is None or trial.failure:
            rows[mode]["reason"] = trial.failure if trial else "not converted"
        elif verdict is not None and not verdict.passed:
            rows[mode]["reason"] = "fails the checks: " + "; ".join(verdict.problems)
    eligible = [r for r in rows.values() if r["passed"]]
    chosen = None
    if eligible:
        fastest = min(eligible, key=lambda r: r["p50_ms"])
        tied = [r for r in eligible if r["p50_ms"] <= fastest["p50_ms"] * (1 + TIE_TOLERANCE)]
        chosen = min(tied, key=lambda r: (r["bytes"], r["p50_ms"]))
        for row in eligible:
            if row is chosen and row is fastest:
                row["reason"] = f"fastest mode that passes the checks (p50 {row['p50_ms']:.3f} ms)"
            elif row is chosen:
                row["reason"] = (
                    f"as fast as {fastest['mode']} (p50 within {TIE_TOLERANCE:.0%}) and smaller "
                    f"({row['bytes']} vs {fastest['bytes']} bytes)"
                )
            elif row in tied:
                row["reason"] = f"as fast as {chosen['mode']} (p50 within {TIE_TOLERANCE:.0%}) but larger"
            else:
                ratio = row["p50_ms"] / chosen["p50_ms"]
                row["reason"] = f"slower: p50 {row['p50_ms']:.3f} ms, {ratio:.2f}x {chosen['mode']}"
    elif allow_degraded:
        converted = [r for r in rows.values() if r["p50_ms"] is not None and trials[r["mode"]].verdict]
        if converted:
            chosen = max(converted, key=lambda r: _faithfulness(trials[r["mode"]].verdict))
            chosen["reason"] = f"--allow-degraded: the most faithful mode, though it {chosen['reason']}"
    for row in rows.values():
        row.setdefault("reason", "not measured")
    candidates = tuple(Candidate(**row, chosen=row is chosen) for row in rows.values())
    return (chosen["mode"] if chosen else None), candidates


def _faithfulness(verdict: Verdict | None) -> float:
    if verdict is None:
        return float("-inf")
    if verdict.accuracy is not None:
        return verdict.accuracy.converted
    if verdict.fidelity.top1_agreement is not None:
        return verdict.fidelity.top1_agreement
    return verdict.fidelity.cosine
