"""Remote overhead: the wall time `edgekit run BUNDLE IMAGE --on HOST` adds to the same run done on the
device itself, the first time (nothing cached on the device, no SSH connection open) and the second
time (agent and bundle cached, the multiplexed connection kept from the run before).

The device is a throwaway sshd on 127.0.0.8 (tests/remote/sshd.py). Two kinds of device python:
  x86      this venv's python (the agent's folder comes first on its path, so edgekit is the payload's)
  aarch64  the emulated Debian 12 arm64 Python with ai-edge-litert (make arm-env), fewer rounds: QEMU is slow
Per round, back to back, in alternating order:
  remote   python -m edgekit run BUNDLE IMAGE --warmup 0 --repeat 1 --json --on HOST   (what a user types)
  device   the same run on the "device" without SSH: its python running the cached agent on the cached
           bundle with the same arguments (`PY AGENT run '{"bundle": ..., "warmup": 0, "repeat": 1}'`), in
           the environment its SSH session has: the work the remote run asks the device to do
  device'  the device run again: an A/A control (how much two identical runs differ here)
The overhead is remote − device (laptop start-up, ssh exec over the kept connection, the login shell,
framing, the device's facts, mapping paths back). First runs clear the device's cache and close the
connection before each round. Goal (issue 13): the second run's overhead under 1 s on loopback.

Usage: python benchmarks/remote_overhead.py [--rounds N] [--arm-rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from workloads import ROOT, Results, bundle, ms, row

sys.path.insert(0, str(ROOT))
from tests.remote.devices import arm_ready, device_python  # noqa: E402
from tests.remote.sshd import Sshd  # noqa: E402

IMAGE = ROOT / "samples" / "digits" / "images" / "digit-3.png"
GOAL_S = 1.0


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])}...: exit {result.returncode}: {result.stderr[-800:]}")
    return elapsed


def measure(kind: str, python: Path, digits: Path, rounds: int, results: Results) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": tempfile.mkdtemp(prefix="ekb-cache-")}
    control = tempfile.mkdtemp(prefix="ekb-")
    env["EDGEKIT_SSH_CONTROL_DIR"] = control
    with Sshd("127.0.0.8", python=python, name=f"bench-{kind.split()[0]}") as device:
        remote = [sys.executable, "-m", "edgekit", "run", str(digits), str(IMAGE), "--warmup", "0", "--repeat", "1",
                  "--json", "--on", device.name, "--ssh-config", str(device.ssh_config)]  # fmt: skip
        cache = device.home / ".cache" / "edgekit"

        def close_connection() -> None:
            for socket in Path(control).iterdir():
                subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"], capture_output=True)

        def device_side() -> list[str]:
            agent = next(cache.glob("agent-*"))
            cached = next((cache / "bundles").iterdir()) / digits.name
            kwargs = {"bundle": str(cached), "inputs": [str(IMAGE)], "warmup": 0, "repeat": 1}  # as the remote run's
            return [str(python), str(agent), "run", json.dumps(kwargs)]

        # The device's own environment, as its SSH session has it (not this shell's PYTHON* settings).
        on_device = {"HOME": str(device.home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        timed(remote, env)  # once untimed: caches and bytecode on both sides, as after any first use
        figures: dict[str, list[float]] = {"first": [], "second": [], "device": [], "device_aa": []}
        for index in range(rounds):
            shutil.rmtree(cache, ignore_errors=True)
            close_connection()
            figures["first"].append(timed(remote, env))
            order = ["second", "device", "device_aa"] if index % 2 == 0 else ["device", "device_aa", "second"]
            for name in order:
                command = remote if name == "second" else device_side()
                figures[name].append(timed(command, env if name == "second" else on_device))
        close_connection()
    median = {name: float(np.median(values)) for name, values in figures.items()}
    control_gap = float(np.median(np.abs(np.asarray(figures["device_aa"]) - np.asarray(figures["device"]))))
    for which in ("first", "second"):
        overhead = np.asarray(figures[which]) - np.asarray(figures["device"])
        value = float(np.median(overhead))
        results.add(
            row(
                f"remote-{which}-{kind}",
                f"run --on overhead, {which} run",
                f"digits int8, {kind} device on loopback",
                None,
                f"{value * 1000:.0f} ms",
                f"device-side run {ms(median['device'] * 1000)}",
                median[which] / median["device"],
                f"< {GOAL_S:g} s" if which == "second" else "reported",
                bool(value < GOAL_S) if which == "second" else None,
                remote_s=figures[which],
                device_s=figures["device"],
                overhead_s=[round(v, 4) for v in overhead.tolist()],
                overhead_p25_s=float(np.percentile(overhead, 25)),
                overhead_p75_s=float(np.percentile(overhead, 75)),
                aa_control_median_gap_s=control_gap,
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--arm-rounds", type=int, default=3)
    parser.add_argument("--bundle", type=Path, help="Default: the digits int8 x86_64 bundle of make bench.")
    args = parser.parse_args(argv)
    digits = args.bundle or bundle("digits-int8")
    results = Results("remote_overhead")
    folder = Path(tempfile.mkdtemp(prefix="ekb-py-"))
    x86 = folder / "python3-x86"  # a wrapper, not a link: a link to a venv's python loses the venv
    x86.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    x86.chmod(0o755)
    measure("x86", x86, digits, args.rounds, results)
    if args.arm_rounds and arm_ready("arm64-litert"):
        measure("aarch64 (emulated)", device_python("arm64-litert", folder), digits, args.arm_rounds, results)
    else:
        results.notes.append("aarch64 device skipped: make arm-env")
    results.notes.append(
        "overhead = wall time of `edgekit run --on HOST` minus the same run by the device's python without SSH "
        "(the cached agent on the cached bundle); first: empty device cache and no open connection"
    )
    results.write()
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
