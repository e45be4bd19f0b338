"""`--quantize auto`: for each target, the fastest mode that passes the checks, measured on this machine.

Which mode is fastest is not a table lookup: under XNNPACK on x86, float16 and dynamic-range models are
size optimizations that run no faster than float32 (dynamic-range runs slower), int8 runs about twice as
fast on a MobileNet but not on a tiny model where invoke overhead dominates, and int16x8 runs on
reference kernels. So every candidate is timed, through real bundles opened by the same Session that
`edgekit run` uses, with the target's thread count (capped at this machine's cores), in the one timing
loop (`runtime.timing`). Candidates are timed in alternating bursts, so a burst of load on a shared
machine hits all of them rather than one.

Ranking: lowest median (p50) invoke latency among the modes that pass the checks; modes within
TIE_TOLERANCE of the fastest count as tied, and the smallest model wins a tie.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit.bundle import open_bundle
from edgekit.bundle.files import temporary_folder
from edgekit.conversion.bundling import write_bundle
from edgekit.conversion.contract import ModelInputs
from edgekit.conversion.verify import ModeConversion, Verdict, faithfulness
from edgekit.runtime.preprocess import quantize
from edgekit.runtime.session import Session
from edgekit.runtime.stats import LatencyStats
from edgekit.runtime.timing import time_interleaved
from edgekit.targets import Target

TIE_TOLERANCE = 0.05  # p50 within 5% of the fastest: a tie on a shared machine's noise
SECONDS_PER_CANDIDATE = 0.75  # timed invokes per (mode, thread count), in alternating bursts
MIN_RUNS = 15
MAX_RUNS = 600
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
    bundles: Mapping[str, Path], thread_counts: Sequence[int], sample: Mapping[str, np.ndarray]
) -> dict[tuple[str, int], LatencyStats]:
    """Invoke latency of each bundle (mode → folder) at each thread count, timed in alternating bursts
    on one real input `sample` (float32 arrays with a batch axis of 1, in the model's input order)."""
    with contextlib.ExitStack() as stack:
        sessions = {}
        for mode, path in bundles.items():
            opened = stack.enter_context(open_bundle(path))
            for threads in sorted(set(thread_counts)):
                session = Session(opened, threads=threads)
                model = session.interpreter
                for detail, spec, array in zip(model.get_input_details(), opened.manifest.inputs, sample.values()):
                    model.set_tensor(detail["index"], quantize(array.astype(np.float32), spec))
                sessions[(mode, threads)] = session
        keys = list(sessions)
        timings = time_interleaved(
            [sessions[key].interpreter.invoke for key in keys],
            SECONDS_PER_CANDIDATE * len(keys),
            min_runs=MIN_RUNS,
            max_runs=MAX_RUNS,
            warmup=WARMUP,
        )
    return {key: LatencyStats.from_ns(series) for key, series in zip(keys, timings)}


def choose_modes(
    targets: Sequence[Target],
    conversions: Mapping[str, ModeConversion],
    failures: Mapping[str, str],
    sample: Mapping[str, np.ndarray],
    name: str,
    inputs: ModelInputs,
    allow_degraded: bool,
) -> tuple[dict[str, str | None], dict[str, tuple[Candidate, ...]]]:
    """--quantize auto: time every converted mode once per thread count (through real bundles and the
    device's Session, on one real input `sample`), then choose per target."""
    trials = {m: Trial(m, len(c.content), c.verdict) for m, c in conversions.items()}
    trials.update({m: Trial(m, None, None, failure) for m, failure in failures.items()})
    with temporary_folder("edgekit-auto-") as tmp:
        bundles = {}
        for mode, conversion in conversions.items():
            bundles[mode] = Path(tmp) / mode
            write_bundle(bundles[mode], name, targets[0], conversion, inputs, {}, False)
        latencies = measure_latencies(bundles, [machine_threads(t) for t in targets], sample)
    plan: dict[str, str | None] = {}
    candidates = {}
    for target in targets:
        plan[target.name], candidates[target.name] = choose_mode(target, trials, latencies, allow_degraded)
    return plan, candidates


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
            chosen = max(converted, key=lambda r: faithfulness(trials[r["mode"]].verdict))
            chosen["reason"] = f"--allow-degraded: the most faithful mode, though it {chosen['reason']}"
    for row in rows.values():
        row.setdefault("reason", "not measured")
    candidates = tuple(Candidate(**row, chosen=row is chosen) for row in rows.values())
    return (chosen["mode"] if chosen else None), candidates
