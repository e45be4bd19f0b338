"""The one timed-invoke loop. Every latency edgekit reports (run, bench, auto's choice, pruning's
comparison) is measured here, so they all mean the same thing: only `invoke()` sits between the two
clock reads; storing a timing and checking a deadline happen outside the timed region."""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np

from edgekit.errors import UsageError

Invoke = Callable[[], Any]


def time_invokes(
    invoke: Invoke, warmup: int, repeat: int | None = None, min_seconds: float | None = None
) -> tuple[int, np.ndarray]:
    """(first invoke ns, timed invokes ns): a first invoke, `warmup` untimed invokes, then either
    `repeat` timed invokes or as many as fit in `min_seconds` (at least one)."""
    clock = time.perf_counter_ns
    start = clock()
    invoke()
    first_ns = clock() - start
    for _ in range(warmup):
        invoke()
    if repeat is not None:
        timings = np.empty(repeat, dtype=np.int64)
        for i in range(repeat):
            start = clock()
            invoke()
            timings[i] = clock() - start
        return first_ns, timings
    if min_seconds is None:
        raise UsageError("give --repeat or --min-seconds")
    deadline = clock() + int(min_seconds * 1e9)
    timings = np.empty(1024, dtype=np.int64)
    count = 0
    while True:
        start = clock()
        invoke()
        end = clock()
        timings[count] = end - start
        count += 1
        if end >= deadline:
            return first_ns, timings[:count].copy()
        if count == timings.size:
            timings = np.concatenate([timings, np.empty(timings.size, dtype=np.int64)])


def time_interleaved(
    invokes: Sequence[Invoke],
    seconds: float,
    min_runs: int = 20,
    max_runs: int = 5000,
    warmup: int = 3,
    burst: int = 5,
) -> list[np.ndarray]:
    """Invoke timings (ns) of several models measured in alternating bursts, so that a machine
    that gets busier slows all of them alike: what comparisons made in one run need. Runs until
    `seconds` have passed and every model has `min_runs` timings, or one has `max_runs`."""
    for invoke in invokes:
        for _ in range(warmup):
            invoke()
    series: list[list[int]] = [[] for _ in invokes]
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    while clock() < deadline or min(len(s) for s in series) < min_runs:
        for invoke, timings in zip(invokes, series):
            for _ in range(burst):
                start = clock()
                invoke()
                timings.append(clock() - start)
        if max(len(s) for s in series) >= max_runs:
            break
    return [np.asarray(s, dtype=np.int64) for s in series]
