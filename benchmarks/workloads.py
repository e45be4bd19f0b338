"""What every benchmark script shares: the workloads `make bench` builds, machine facts, alternating
rounds (so drift and other load hit both sides of a ratio alike) and the result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Measure the edgekit of this checkout, not whichever one the environment has installed.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edgekit.native_output import quiet_native_output  # noqa: E402

# Kept for the scripts that still import it (convert_overhead.py, pruning.py): the same thing.
quiet_fds = quiet_native_output
BUILD = ROOT / "build" / "bench"
BUNDLES = BUILD / "bundles"
RESULTS = BUILD / "results"
DIGITS_BUILD = ROOT / "samples" / "digits" / "build"
MOBILENET_BUILD = ROOT / "samples" / "mobilenet" / "build"
# bundle folder names under BUNDLES, as the Makefile's bench target writes them
WORKLOADS = {
    "digits-int8": "digits-int8-x86_64",
    "digits-float32": "digits-float32-x86_64",
    "mobilenet_v2-int8": "mobilenet_v2-int8-x86_64",
    "mobilenet_v2-float32": "mobilenet_v2-float32-x86_64",
}
PACKAGES = ("ai-edge-litert", "tensorflow-cpu", "keras", "numpy", "pillow", "click", "rich", "matplotlib")


def bundle(name: str) -> Path:
    """The bundle folder of a workload; a clear message when `make bench` has not built it."""
    path = BUNDLES / WORKLOADS[name]
    if not (path / "edgekit.json").is_file():
        raise SystemExit(f"{path}: missing; build the workloads first with `make bench`")
    return path


def model(name: str) -> Path:
    return bundle(name) / "model.tflite"


def alternate(rounds: int) -> Iterator[tuple[int, bool]]:
    """(round, edgekit_first): ABBA ordering, so neither side always runs first."""
    for index in range(rounds):
        yield index, index % 2 == 0


def paired_ratio(numerators: list[float], denominators: list[float]) -> dict[str, float]:
    """Median and spread of per-round ratios (each round's two sides ran back to back)."""
    ratios = np.asarray(numerators) / np.asarray(denominators)
    return {
        "median": float(np.median(ratios)),
        "p25": float(np.percentile(ratios, 25)),
        "p75": float(np.percentile(ratios, 75)),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": memory_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "edgekit_commit": git_commit(),
    }


def machine_lines(facts: dict[str, Any]) -> list[str]:
    """The machine and versions as two Markdown lines, for the reports' headers."""
    packages = ", ".join(f"{name} {v}" for name, v in facts["packages"].items() if v)
    return [
        f"Machine: {facts['cpu']} ({facts['arch']}), {facts['cores']} usable cores, "
        f"{facts['memory_gb']} GB RAM, Linux {facts['kernel']}, Python {facts['python']}.",
        f"Versions: {packages}; edgekit at commit {facts['edgekit_commit']}.",
    ]


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else []


def row(
    item: str,
    measure: str,
    workload: str,
    threads: int | None,
    edgekit: str,
    reference: str,
    ratio: float | None,
    goal: str,
    met: bool | None,
    **details: Any,
) -> dict[str, Any]:
    """One line of the results table (the figures as text, as they should read) plus raw details."""
    return {
        "item": item,
        "measure": measure,
        "workload": workload,
        "threads": threads,
        "edgekit": edgekit,
        "reference": reference,
        "ratio": None if ratio is None else round(ratio, 3),
        "goal": goal,
        "met": met,
        "details": details,
    }


class Results:
    """Collects a script's rows and writes them to RESULTS/<name>.json with machine and load facts."""

    def __init__(self, name: str, out: Path = RESULTS):
        self.name = name
        self.out = out
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.started = time.time()
        self.load_before = load_average()

    def add(self, entry: dict[str, Any]) -> None:
        self.rows.append(entry)
        ratio = "" if entry["ratio"] is None else f" ratio {entry['ratio']:.3f}"
        threads = "" if entry["threads"] is None else f" x{entry['threads']}"
        print(
            f"[{self.name}] {entry['measure']} {entry['workload']}{threads}: "
            f"edgekit {entry['edgekit']} vs {entry['reference']}{ratio} (goal {entry['goal']})",
            flush=True,
        )

    def write(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        data = {
            "script": f"benchmarks/{self.name}.py",
            "command": " ".join([Path(sys.executable).name, *[str(a) for a in sys.argv]]),
            "seconds": round(time.time() - self.started, 1),
            "load_average_before": self.load_before,
            "load_average_after": load_average(),
            "machine": machine(),
            "rows": self.rows,
            "notes": self.notes,
        }
        path = self.out / f"{self.name}.json"
        tmp = path.with_suffix(".json.partial")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
        print(f"[{self.name}] wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
        return path


def ms(value: float) -> str:
    """Milliseconds with precision that fits their size."""
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 1:
        return f"{value:.2f} ms"
    return f"{value * 1000:.1f} µs"
