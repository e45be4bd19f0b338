"""1b. `edgekit bench`'s p50 vs `litert-benchmark`, the benchmark tool that ships inside ai-edge-litert
(its `litert-benchmark` console script, ai_edge_litert/tools/benchmark_litert_model.py): within 5 %.

The reference tool runs in this process through its own `run_benchmark()` with the arguments its
command line takes (`--model M.tflite --num_threads T --num_runs N --warmup_runs W`; it has no
`--graph` flag, unlike the C++ benchmark_model). It prints its figures rounded to 0.01 ms, which is
coarser than a 25 µs model, so its unrounded per-run timings are read where it computes its
percentiles. Rounds alternate which tool goes first; the figure is the median of per-round ratios.
A call-by-call probe (1 thread) then times the interpreter's invoke() and the tool's
CompiledModel.run_by_name() alternately, to show what each timed call costs beyond the kernels.

Usage: python benchmarks/bench_vs_litert.py [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import Results, alternate, bundle, ms, paired_ratio, row  # noqa: E402

from edgekit.native_output import quiet_native_output  # noqa: E402

GOAL = 1.05
CASES = (("digits-int8", 2000), ("mobilenet_v2-int8", 40), ("mobilenet_v2-float32", 20))
THREADS = (1, 2)
PROBE_CALLS = {"digits-int8": 5000}  # on MobileNet a few µs drown in run-to-run noise
WARMUP = 10


class ReferenceTool:
    """`litert-benchmark`, called in-process, keeping its unrounded timings."""

    def __init__(self) -> None:
        from ai_edge_litert.tools import benchmark_litert_model as tool

        self.tool = tool
        self.timings_ms: list[float] = []
        percentile = tool.percentile

        def recording_percentile(sorted_data, p):
            # The tool calls percentile(sorted inference times, 5) once per run: the raw timings in ms.
            if p == 5:
                self.timings_ms = list(sorted_data)
            return percentile(sorted_data, p)

        tool.percentile = recording_percentile
        logging.getLogger("benchmark_litert_model").setLevel(logging.WARNING)

    def arguments(self, model_path: str, threads: int, runs: int, warmup: int):
        argv = sys.argv
        sys.argv = [
            "litert-benchmark",
            "--model",
            model_path,
            "--num_threads",
            str(threads),
            "--num_runs",
            str(runs),
            "--warmup_runs",
            str(warmup),
        ]
        try:
            return self.tool.parse_args()
        finally:
            sys.argv = argv

    def measure(self, model_path: str, threads: int, runs: int, warmup: int) -> tuple[float, float, float, bool]:
        """(unrounded median, unrounded min, the tool's own printed median, fully_accelerated)."""
        with contextlib.redirect_stdout(io.StringIO()):
            report = self.tool.run_benchmark(self.arguments(model_path, threads, runs, warmup))
        timings = self.timings_ms
        return float(np.median(timings)), min(timings), report["latency"]["median_ms"], report["fully_accelerated"]


def per_call_probe(reference: ReferenceTool, model_path: str, iterations: int) -> dict[str, float]:
    """The two timed calls side by side, alternating call by call on one thread: the interpreter's
    `invoke()` (what edgekit times) and the tool's `CompiledModel.run_by_name()` set up by the tool's
    own functions. Their difference is what each call costs on top of the same kernels."""
    import time

    from ai_edge_litert.interpreter import Interpreter

    tool = reference.tool
    args = reference.arguments(model_path, 1, iterations, WARMUP)
    compiled_model, accelerator, environment, environment_options, options, cpu_options = tool._import_litert()
    model = compiled_model.from_file(
        model_path,
        environment=tool.create_environment(args, environment, environment_options),
        options=tool.create_model_options(
            args, options, cpu_options, tool.build_hardware_accelerators(args, accelerator)
        ),
    )
    signature = list(model.get_signature_list())[0]
    input_details = model.get_input_tensor_details(signature)
    inputs = {name: model.create_input_buffer_by_name(signature, name) for name in input_details}
    outputs = {
        name: model.create_output_buffer_by_name(signature, name) for name in model.get_output_tensor_details(signature)
    }
    for name, buffer in inputs.items():
        tool.fill_random_input(buffer, input_details[name])
    interpreter = Interpreter(model_path=model_path, num_threads=1)
    interpreter.allocate_tensors()
    for _ in range(WARMUP):
        interpreter.invoke()
        model.run_by_name(signature, inputs, outputs)
    invoke_ns, run_ns = np.empty(iterations), np.empty(iterations)
    clock = time.perf_counter_ns
    for i in range(iterations):
        start = clock()
        interpreter.invoke()
        invoke_ns[i] = clock() - start
        start = clock()
        model.run_by_name(signature, inputs, outputs)
        run_ns[i] = clock() - start
    invoke_us, run_us = float(np.median(invoke_ns)) / 1e3, float(np.median(run_ns)) / 1e3
    return {"invoke_p50_us": invoke_us, "run_by_name_p50_us": run_us, "difference_us": run_us - invoke_us}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    from edgekit.runtime.benchmark import bench

    reference = ReferenceTool()
    results = Results("bench_vs_litert")
    for workload, repeat in CASES:
        path = bundle(workload)
        model_path = str(path / "model.tflite")
        for threads in THREADS:
            ours, theirs, printed, our_floor, their_floor = [], [], [], [], []
            with quiet_native_output():
                for _, edgekit_first in alternate(args.rounds):
                    for side in ("edgekit", "tool") if edgekit_first else ("tool", "edgekit"):
                        if side == "edgekit":
                            report = bench([path], threads=[threads], warmup=WARMUP, repeat=repeat)
                            ours.append(report.rows[0].latency_ms.p50)
                            our_floor.append(report.rows[0].latency_ms.min)
                        else:
                            median, floor, shown, fully_accelerated = reference.measure(
                                model_path, threads, repeat, WARMUP
                            )
                            theirs.append(median)
                            their_floor.append(floor)
                            printed.append(shown)
            ratio = paired_ratio(ours, theirs)
            probe = None
            if threads == 1 and workload in PROBE_CALLS:
                with quiet_native_output():
                    probe = per_call_probe(reference, model_path, PROBE_CALLS[workload])
                results.notes.append(
                    f"{workload}, 1 thread, call by call: interpreter invoke() p50 {probe['invoke_p50_us']:.1f} µs, "
                    f"litert-benchmark's run_by_name() p50 {probe['run_by_name_p50_us']:.1f} µs "
                    f"(difference {probe['difference_us']:+.1f} µs per call)"
                )
            goal_met = 1 / GOAL <= ratio["median"] <= GOAL
            results.add(
                row(
                    "1",
                    "`edgekit bench` p50 / `litert-benchmark` median",
                    workload,
                    threads,
                    ms(float(np.median(ours))),
                    ms(float(np.median(theirs))),
                    ratio["median"],
                    f"within {GOAL}×",
                    goal_met,
                    ratio_p25=ratio["p25"],
                    ratio_p75=ratio["p75"],
                    difference_us=(float(np.median(ours)) - float(np.median(theirs))) * 1000,
                    # The fastest run of each: the least noisy estimate of a fixed per-call cost.
                    min_difference_us=(min(our_floor) - min(their_floor)) * 1000,
                    rounds=args.rounds,
                    repeat=repeat,
                    warmup=WARMUP,
                    edgekit_p50_ms=ours,
                    tool_median_ms=theirs,
                    tool_printed_median_ms=printed,
                    edgekit_delegate_applied=report.rows[0].delegate_applied,
                    tool_fully_accelerated=fully_accelerated,
                    per_call_probe=probe,
                )
            )
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
