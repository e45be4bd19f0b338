"""Soak: `edgekit run` for tens of thousands of invokes in one process. Resident memory must stay flat
after warm-up, and invoke latency p99 must be the same for the last thousand invokes as for the first.

Two phases, one process, on the digits int8 bundle and the ten sample digit images:
- run: `edgekit.runtime.session.run()` called again and again, each call as a device would make it with
  `--trusted-key`: check the signature, every file's SHA-256, load a fresh interpreter, decode and
  preprocess the images, time `--repeat` invokes and one end-to-end pass per image. A leak anywhere on
  that path (bundle reading, signature check, interpreter creation, Pillow decoding) grows RSS per call.
- serve: one Session answering image after image (decode → preprocess → invoke → top-k), as a long-lived
  process on a device would.

RSS is read from /proc/self/statm after every call (run) or every 100 answers (serve). "After warm-up"
is the first 10 % of each phase. Figures are written to benchmarks/SOAK.md (--write) and
build/bench/results/soak.json.

Usage: python benchmarks/soak.py [--bundle PATH] [--runs 250] [--repeat 100] [--serve 20000] [--write]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import ROOT, Results, bundle, load_average, machine, row  # noqa: E402

from edgekit.native_output import quiet_native_output  # noqa: E402

IMAGES = ROOT / "samples" / "digits" / "images"
WARMUP_SHARE = 0.1
WINDOW = 1000
WARMUP_INVOKES = 10  # `edgekit run`'s default: each fresh interpreter's first invokes set XNNPACK up
# Verdict thresholds: RSS may move by allocator noise, not by a leak's steady climb.
MAX_GROWTH_KB = 1024
MAX_P99_RATIO = 1.25
TRAJECTORY = (10, 25, 50, 75, 100)


def rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def memory_figures(invokes: np.ndarray, rss: np.ndarray) -> dict:
    """RSS at the end of warm-up vs the end, the largest excursion, and the fitted slope after warm-up."""
    start = max(1, int(len(rss) * WARMUP_SHARE))
    after = rss[start:]
    slope = np.polyfit(invokes[start:], after, 1)[0] * 10_000 if len(after) > 2 else 0.0
    return {
        "rss_start_kb": int(rss[0]),
        "rss_after_warmup_kb": int(rss[start - 1]),
        "rss_end_kb": int(rss[-1]),
        "rss_max_after_warmup_kb": int(after.max()),
        "growth_after_warmup_kb": int(rss[-1] - rss[start - 1]),
        "slope_kb_per_10k_invokes": round(float(slope), 2),
        # RSS at 10, 25, 50, 75 and 100 % of the phase: a leak climbs steadily, allocator noise steps once.
        "trajectory_kb": {f"{share}%": int(rss[max(0, int(len(rss) * share / 100) - 1)]) for share in TRAJECTORY},
    }


def latency_figures(ns: np.ndarray) -> dict:
    """p99 of the first and the last WINDOW timings after warm-up, and of every WINDOW in between: on a
    shared machine one window can catch another process's burst, so the drift figure compares the
    median p99 of the first five windows with that of the last five."""
    settled = ns[int(len(ns) * WARMUP_SHARE) :] / 1e6
    windows = np.array(
        [np.percentile(settled[i : i + WINDOW], 99) for i in range(0, len(settled) - WINDOW + 1, WINDOW)]
    )
    edge = min(5, len(windows))
    return {
        "p50_first_ms": round(float(np.percentile(settled[:WINDOW], 50)), 4),
        "p50_last_ms": round(float(np.percentile(settled[-WINDOW:], 50)), 4),
        "p99_first_ms": round(float(np.percentile(settled[:WINDOW], 99)), 4),
        "p99_last_ms": round(float(np.percentile(settled[-WINDOW:], 99)), 4),
        "p99_ratio_last_first": round(
            float(np.percentile(settled[-WINDOW:], 99) / np.percentile(settled[:WINDOW], 99)), 3
        ),
        "windows": len(windows),
        "window_p99_median_ms": round(float(np.median(windows)), 4),
        "window_p99_p10_ms": round(float(np.percentile(windows, 10)), 4),
        "window_p99_p90_ms": round(float(np.percentile(windows, 90)), 4),
        "p99_drift_last5_first5": round(float(np.median(windows[-edge:]) / np.median(windows[:edge])), 3),
    }


def signed_copy(source: Path, workdir: Path) -> tuple[Path, Path | None]:
    """A signed copy of the bundle and its public key; unsigned if `cryptography` is not installed."""
    target = workdir / source.name
    shutil.copytree(source, target)
    try:
        from edgekit.signing import generate_keypair, sign_bundle

        keys = generate_keypair(workdir / "soak")
        sign_bundle(target, keys.private_key)
        return target, Path(keys.public_key)
    except Exception as exc:  # no cryptography: soak the unsigned path and say so
        print(f"[soak] running unsigned: {exc}", file=sys.stderr)
        return target, None


def soak_run(path: Path, trusted_key: Path | None, runs: int, repeat: int) -> dict:
    from edgekit.runtime.session import run

    images = sorted(IMAGES.glob("*.png"))
    # Every buffer the soak itself fills is allocated (and its pages touched) up front, so RSS shows edgekit only.
    invoke = np.full(runs * repeat, -1, dtype=np.int64)
    rss = np.full(runs, -1, dtype=np.int64)
    counted = np.full(runs, -1, dtype=np.int64)
    total = 0
    started = time.perf_counter()
    for i in range(runs):
        with quiet_native_output():  # LiteRT prints a line to fd 2 per interpreter it creates
            report = run(path, images, warmup=WARMUP_INVOKES, repeat=repeat, trusted_key=trusted_key)
        assert report.results and len(_captured) == 1
        invoke[i * repeat : (i + 1) * repeat] = _captured.pop()
        total += 1 + WARMUP_INVOKES + repeat + max(repeat, len(images))  # first, warm-up, timed, end to end
        rss[i] = rss_kb()
        counted[i] = total
    seconds = time.perf_counter() - started
    return {
        "calls": runs,
        "timed_invokes": int(invoke.size),
        "invokes_total": total,
        "seconds": round(seconds, 1),
        "signed": trusted_key is not None,
        "latency": latency_figures(invoke),
        "memory": memory_figures(counted.astype(float), rss.astype(float)),
    }


_captured: list[np.ndarray] = []


def capture_invoke_timings() -> None:
    """run() reports percentiles; keep the raw invoke timings they come from (the timer itself is unchanged)."""
    from edgekit.runtime import timing

    timer = timing.time_invokes

    def recorded(*args, **kwargs) -> tuple[int, np.ndarray]:
        first_ns, timings = timer(*args, **kwargs)
        _captured.append(timings.copy())
        return first_ns, timings

    timing.time_invokes = recorded


def soak_serve(path: Path, trusted_key: Path | None, answers: int) -> dict:
    from edgekit.bundle import open_bundle
    from edgekit.runtime.session import Session

    images = sorted(IMAGES.glob("*.png"))
    ns = np.full(answers, -1, dtype=np.int64)
    rss = np.full(answers // 100, -1, dtype=np.int64)
    counted = np.arange(1, answers // 100 + 1, dtype=np.int64) * 100
    clock = time.perf_counter_ns
    started = time.perf_counter()
    with open_bundle(path, trusted_key=trusted_key) as opened, quiet_native_output():
        session = Session(opened)
    for i in range(answers):
        start = clock()
        result = session.summarize("x", session.predict(session.prepare(images[i % len(images)])), 3)
        ns[i] = clock() - start
        assert result.top_k
        if (i + 1) % 100 == 0:
            rss[i // 100] = rss_kb()
    return {
        "answers": answers,
        "invokes_total": answers,
        "seconds": round(time.perf_counter() - started, 1),
        "latency": latency_figures(ns),
        "memory": memory_figures(counted.astype(float), rss.astype(float)),
    }


def verdict(phase: dict) -> tuple[bool, bool]:
    memory, latency = phase["memory"], phase["latency"]
    return memory["growth_after_warmup_kb"] <= MAX_GROWTH_KB, latency["p99_drift_last5_first5"] <= MAX_P99_RATIO


def markdown(results: dict, command: str) -> str:
    facts = results["machine"]
    lines = [
        "# Soak: `edgekit run` under sustained load",
        "",
        f"Command: `{command}` (commit {facts['edgekit_commit']}, {facts['cpu']}, {facts['cores']} cores, "
        f"Python {facts['python']}, ai-edge-litert {facts['packages'].get('ai-edge-litert')}; "
        f"load average {results['load_before']} before, {results['load_after']} after; the machine is shared).",
        "",
        "Workload: the digits int8 bundle, the ten sample digit PNGs, one process. RSS from /proc/self/statm;",
        f"warm-up is the first {int(WARMUP_SHARE * 100)} % of each phase; latency windows are the first and last "
        f"{WINDOW} timings after it.",
        "",
        "| phase | invokes | seconds | RSS after warm-up | RSS at end | growth | slope per 10k invokes "
        "| p99 first 1000 | p99 last 1000 | last/first | p99 per 1000: median (p10–p90) | drift last 5 / first 5 "
        "| flat? |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, phase in (("run (repeated `run()`, signed)", results["run"]), ("serve (one Session)", results["serve"])):
        m, lat = phase["memory"], phase["latency"]
        flat_memory, flat_latency = verdict(phase)
        lines.append(
            f"| {name} | {phase['invokes_total']:,} | {phase['seconds']} | {m['rss_after_warmup_kb'] / 1024:.1f} MB "
            f"| {m['rss_end_kb'] / 1024:.1f} MB | {m['growth_after_warmup_kb']:+d} KB "
            f"| {m['slope_kb_per_10k_invokes']:+.1f} KB "
            f"| {lat['p99_first_ms']:.3f} ms | {lat['p99_last_ms']:.3f} ms | {lat['p99_ratio_last_first']:.2f} "
            f"| {lat['window_p99_median_ms']:.3f} ({lat['window_p99_p10_ms']:.3f}–{lat['window_p99_p90_ms']:.3f}) ms "
            f"| {lat['p99_drift_last5_first5']:.2f} "
            f"| memory {'yes' if flat_memory else 'NO'}, p99 {'yes' if flat_latency else 'NO'} |"
        )
    lines += ["", "RSS along each phase (KB):", "", "| phase | " + " | ".join(f"{p} %" for p in TRAJECTORY) + " |"]
    lines.append("|---|" + "---|" * len(TRAJECTORY))
    for name in ("run", "serve"):
        trajectory = results[name]["memory"]["trajectory_kb"]
        lines.append(f"| {name} | " + " | ".join(f"{trajectory[f'{p}%']:,}" for p in TRAJECTORY) + " |")
    run = results["run"]
    lines += [
        "",
        f"run: {run['calls']} calls of `run()`, each with `repeat` timed invokes plus one end-to-end pass per "
        f"input ({run['timed_invokes']:,} timed invokes; latency columns are those invoke-only timings). "
        f"Signature checked on every call: {'yes' if run['signed'] else 'no (cryptography not installed)'}.",
        "serve: end-to-end time per answer (decode, preprocess, invoke, top-k).",
        f"Verdict thresholds: growth after warm-up ≤ {MAX_GROWTH_KB} KB; p99 drift (median of the last five "
        f"1000-timing windows over that of the first five) ≤ {MAX_P99_RATIO}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=None, help="Default: the digits int8 bench workload.")
    parser.add_argument("--runs", type=int, default=250, help="run() calls in the run phase.")
    parser.add_argument("--repeat", type=int, default=100, help="Timed invokes per run() call.")
    parser.add_argument("--serve", type=int, default=20_000, help="Answers in the serve phase.")
    parser.add_argument("--write", action="store_true", help="Write benchmarks/SOAK.md.")
    args = parser.parse_args(argv)
    source = args.bundle or bundle("digits-int8")
    results = Results("soak")
    capture_invoke_timings()
    with tempfile.TemporaryDirectory(prefix="edgekit-soak-") as tmp:
        path, key = signed_copy(source, Path(tmp))
        gc.collect()
        outcome = {"load_before": load_average(), "machine": machine()}
        outcome["run"] = soak_run(path, key, args.runs, args.repeat)
        outcome["serve"] = soak_serve(path, key, args.serve)
        outcome["load_after"] = load_average()
    for name in ("run", "serve"):
        phase = outcome[name]
        flat_memory, flat_latency = verdict(phase)
        m, lat = phase["memory"], phase["latency"]
        results.add(
            row("soak", f"RSS growth after warm-up ({name})", "digits-int8", None,
                f"{m['growth_after_warmup_kb']:+d} KB", f"{m['rss_after_warmup_kb']} KB after warm-up", None,
                f"<= {MAX_GROWTH_KB} KB", flat_memory, **phase)
        )  # fmt: skip
        results.add(
            row("soak", f"p99 last {WINDOW} / first {WINDOW} ({name})", "digits-int8", None,
                f"{lat['p99_last_ms']:.4f} ms", f"{lat['p99_first_ms']:.4f} ms", lat["p99_ratio_last_first"],
                f"drift <= {MAX_P99_RATIO}", flat_latency, **lat)
        )  # fmt: skip
    results.write()
    command = " ".join(["python", "benchmarks/soak.py", *(argv if argv is not None else sys.argv[1:])])
    text = markdown(outcome, command)
    print(text)
    if args.write:
        (ROOT / "benchmarks" / "SOAK.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
