"""`edgekit convert -q auto --on HOST`: time the candidate modes on the device instead of the laptop.

int8, float16 and float32 rank differently on a Cortex-A72 with NEON than on the laptop's x86, so the
choice of mode should come from the device. The conversion half calls one of these where it would call
`selection.measure_latencies`:

    latencies = latencies_on_device(host, bundles, thread_counts)   # same keys and values

Each candidate (a bundle folder or .tflite per mode) goes to the device once (cached by SHA-256, so a
second convert of the same model sends nothing), and `edgekit.bench` times them there, every mode at
every thread count, in one SSH exec.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from edgekit.errors import DeviceError
from edgekit.remote.remote_run import run_on
from edgekit.runtime.stats import LatencyStats

WARMUP = 3
REPEAT = 50


def latencies_on_device(
    host: str,
    models: Mapping[str, str | os.PathLike[str]],
    thread_counts: Sequence[int],
    ssh_config: str | os.PathLike[str] | None = None,
    remote_python: str | None = None,
    repeat: int = REPEAT,
) -> dict[tuple[str, int], LatencyStats]:
    """Invoke latency of each model (mode → bundle folder or .tflite) at each thread count, measured on
    `host`: {(mode, threads): LatencyStats}, as `selection.measure_latencies` returns for the laptop."""
    paths = {mode: Path(path) for mode, path in models.items()}
    answer = run_on(
        host,
        "bench",
        {
            "models": list(paths.values()),
            "threads": sorted(set(thread_counts)),
            "warmup": WARMUP,
            "repeat": repeat,
        },
        ssh_config=ssh_config,
        remote_python=remote_python,
    )
    by_path = {str(path): mode for mode, path in paths.items()}
    latencies: dict[tuple[str, int], LatencyStats] = {}
    for row in answer["report"]["rows"]:
        mode = by_path.get(row["model"])
        if mode is None:
            raise DeviceError(f"{host}: the device timed {row['model']}, which was not asked for")
        latencies[(mode, int(row["threads"]))] = LatencyStats(**row["latency_ms"])
    return latencies


def time_on_device(
    host: str,
    models: Mapping[str, str | os.PathLike[str]],
    threads: int,
    ssh_config: str | os.PathLike[str] | None = None,
    remote_python: str | None = None,
) -> dict[str, float]:
    """Median invoke latency (ms) of each mode on the device at one thread count: {mode: p50}."""
    found = latencies_on_device(host, models, [threads], ssh_config=ssh_config, remote_python=remote_python)
    return {mode: stats.p50 for (mode, _), stats in found.items()}
