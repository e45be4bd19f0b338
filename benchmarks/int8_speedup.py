"""2. int8 vs float32 with XNNPACK, measured by `edgekit bench`: the int8 p50 should be ≥ 1.5× faster.

Each round benchmarks both bundles of a model back to back (alternating which goes first), at
each thread count; the figure is the median of per-round float32/int8 p50 ratios. Also reports
whether XNNPACK took the graph (delegate_applied) and the achieved GMAC/s.

Usage: python benchmarks/int8_speedup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import Results, alternate, bundle, ms, paired_ratio, row  # noqa: E402

from edgekit.native_output import quiet_native_output  # noqa: E402

GOAL = 1.5
CASES = (("mobilenet_v2", 30), ("digits", 2000))
THREADS = (1, 2)
WARMUP = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    from edgekit.runtime.benchmark import bench

    results = Results("int8_speedup")
    for model, repeat in CASES:
        int8, float32 = bundle(f"{model}-int8"), bundle(f"{model}-float32")
        for threads in THREADS:
            p50 = {"int8": [], "float32": []}
            rows = {}
            with quiet_native_output():
                for _, int8_first in alternate(args.rounds):
                    order = [int8, float32] if int8_first else [float32, int8]
                    report = bench(order, threads=[threads], warmup=WARMUP, repeat=repeat)
                    for bench_row in report.rows:
                        p50[bench_row.quantization].append(bench_row.latency_ms.p50)
                        rows[bench_row.quantization] = bench_row
            speedup = paired_ratio(p50["float32"], p50["int8"])
            results.add(
                row(
                    "2",
                    "int8 speed-up over float32 (p50 float32 / p50 int8)",
                    model,
                    threads,
                    f"int8 {ms(float(np.median(p50['int8'])))}",
                    f"float32 {ms(float(np.median(p50['float32'])))}",
                    speedup["median"],
                    f"≥ {GOAL}",
                    speedup["median"] >= GOAL,
                    speedup_p25=speedup["p25"],
                    speedup_p75=speedup["p75"],
                    rounds=args.rounds,
                    repeat=repeat,
                    int8_p50_ms=p50["int8"],
                    float32_p50_ms=p50["float32"],
                    int8_delegate_applied=rows["int8"].delegate_applied,
                    float32_delegate_applied=rows["float32"].delegate_applied,
                    macs=rows["int8"].macs,
                    int8_gmacs_per_s=rows["int8"].macs / float(np.median(p50["int8"])) / 1e6,
                    float32_gmacs_per_s=rows["float32"].macs / float(np.median(p50["float32"])) / 1e6,
                    int8_peak_rss_bytes=rows["int8"].peak_rss_bytes,
                    float32_peak_rss_bytes=rows["float32"].peak_rss_bytes,
                    int8_load_ms=rows["int8"].load_ms,
                    float32_load_ms=rows["float32"].load_ms,
                )
            )
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
