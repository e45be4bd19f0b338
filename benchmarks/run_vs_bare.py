"""1a. `edgekit run`'s invoke p50 vs a bare LiteRT interpreter loop: the shim must cost nothing (≤ 1.03).

Same process, same model, same thread count, same input tensor (what `edgekit run` uses without
inputs: zeros in the input's dtype), same warm-up and repeat count. Each round runs both sides back
to back with a fresh interpreter each, rotating which goes first; the figure is the median of the
per-round ratios, so load from other processes and clock drift hit both sides alike. A second bare
loop in every round (bare/bare, an A/A control) shows how far two identical measurements drift
apart on this machine: the error bar of the ratio.

Usage: python benchmarks/run_vs_bare.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import Results, bundle, ms, paired_ratio, row  # noqa: E402

from edgekit.native_output import quiet_native_output  # noqa: E402

GOAL = 1.03
SIDES = ("edgekit", "bare", "bare again")
# (workload, timed invokes per side per round): about the same wall time per round for each model
CASES = (("digits-int8", 2000), ("mobilenet_v2-int8", 40), ("mobilenet_v2-float32", 20))
THREADS = (1, 2)
WARMUP = 10


def bare_loop(model_path: str, threads: int, tensor: np.ndarray, warmup: int, repeat: int) -> np.ndarray:
    """What a user would write by hand around ai-edge-litert."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model_path, num_threads=threads)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    for _ in range(warmup):
        interpreter.invoke()
    timings = np.empty(repeat, dtype=np.int64)
    for i in range(repeat):
        start = time.perf_counter_ns()
        interpreter.invoke()
        timings[i] = time.perf_counter_ns() - start
    return timings


def run_input(bundle_path) -> np.ndarray:
    """The tensor `edgekit run` times when given no inputs."""
    from edgekit.bundle import open_bundle
    from edgekit.runtime.session import Session

    with open_bundle(bundle_path) as opened:
        return Session(opened, threads=1).zeros()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    from edgekit.runtime.session import run

    results = Results("run_vs_bare")
    for workload, repeat in CASES:
        path = bundle(workload)
        model_path = str(path / "model.tflite")
        with quiet_native_output():
            tensor = run_input(path)
        for threads in THREADS:
            p50 = {side: [] for side in SIDES}
            floor = {side: [] for side in SIDES}
            with quiet_native_output():
                for index in range(args.rounds):
                    for side in SIDES[index % 3 :] + SIDES[: index % 3]:  # rotate who goes first
                        if side == "edgekit":
                            report = run(path, threads=threads, warmup=WARMUP, repeat=repeat)
                            p50[side].append(report.latency_ms.p50)
                            floor[side].append(report.latency_ms.min)
                        else:
                            timings = bare_loop(model_path, threads, tensor, WARMUP, repeat) / 1e6
                            p50[side].append(float(np.median(timings)))
                            floor[side].append(float(timings.min()))
            edgekit_p50, bare_p50 = p50["edgekit"], p50["bare"]
            ratio = paired_ratio(edgekit_p50, bare_p50)
            # The same bare loop against itself: how far two identical measurements drift apart here.
            control = paired_ratio(p50["bare again"], bare_p50)
            results.add(
                row(
                    "1",
                    "`edgekit run` invoke p50 / bare interpreter loop p50",
                    workload,
                    threads,
                    ms(float(np.median(edgekit_p50))),
                    f"{ms(float(np.median(bare_p50)))}; bare/bare {control['median']:.3f} "
                    f"({control['p25']:.3f}–{control['p75']:.3f})",
                    ratio["median"],
                    f"≤ {GOAL}",
                    ratio["median"] <= GOAL,
                    ratio_p25=ratio["p25"],
                    ratio_p75=ratio["p75"],
                    control_bare_over_bare=control,
                    floor_ratio=min(floor["edgekit"]) / min(floor["bare"]),
                    bare_again_p50_ms=p50["bare again"],
                    rounds=args.rounds,
                    repeat=repeat,
                    warmup=WARMUP,
                    edgekit_p50_ms=edgekit_p50,
                    bare_p50_ms=bare_p50,
                    delegate_applied=report.delegate_applied,
                )
            )
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
