"""4. `edgekit convert` as a whole process vs a bare TFLiteConverter script (MobileNetV2-224, int8).

What a user pays, start to exit, each side in a fresh process:
  edgekit  python -m edgekit convert mobilenet_v2.keras -t x86_64 -q int8 --mean 127.5 --std 127.5
           --calibration <32 samples> --out <tmp> --force   (load, export, conversion(s), fidelity
           check, bundle written; run from this checkout)
  bare     a script that loads the same .keras with keras, converts it with
           tf.lite.TFLiteConverter.from_keras_model (int8: Optimize.DEFAULT, a representative dataset of
           the same 32 samples normalized the same way, TFLITE_BUILTINS_INT8, int8 input/output) and
           writes the .tflite
  bare'    the same bare script again: the A/A control (what two identical processes differ by here)
Per child: wall time (spawn → exit), CPU time (user + system) and peak resident memory (ru_maxrss from
wait4, the child alone). Rounds rotate which side starts; the figures are medians of per-round ratios.

The calibration file is the first N (default 32) crops of samples/mobilenet/build/calibration.npz.
`--edgekit-root DIR` runs `python -m edgekit` from another checkout; `--compare DIR` (repeatable) adds
that checkout as one more side of the same rounds, reported against the same bare runs (to measure a
change before and after in one run).

Usage: python benchmarks/convert_process.py [--rounds N] [--samples N] [--edgekit-root DIR] [--compare DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from workloads import MOBILENET_BUILD, ROOT, Results, paired_ratio, row

MODEL = MOBILENET_BUILD / "mobilenet_v2.keras"
CALIBRATION = MOBILENET_BUILD / "calibration.npz"
GOAL_TIME, GOAL_MEMORY = 1.3, 1.5
BARE = """\
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
import tensorflow as tf

model_path, calibration, out = sys.argv[1:4]
with np.load(calibration) as data:
    samples = (data["x"].astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
model = keras.saving.load_model(model_path, compile=False)
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]

def representative():
    for sample in samples:
        yield [sample[None]]

converter.representative_dataset = representative
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
with open(out, "wb") as handle:
    handle.write(converter.convert())
"""


def run_child(command: list[str], cwd: Path) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process, measured by wait4."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"{' '.join(command[:4])}...: exit {process.returncode}\n" + "\n".join(tail))
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def edgekit_command(calibration: Path, out: Path) -> list[str]:
    command = [sys.executable, "-m", "edgekit", "convert", str(MODEL), "-t", "x86_64", "-q", "int8"]
    command += ["--mean", "127.5", "--std", "127.5", "--calibration", str(calibration)]
    return command + ["--name", "mobilenet_v2", "--out", str(out), "--force", "--json"]


def commands(calibration: Path, work: Path, root: Path, compare: list[Path]) -> dict[str, tuple[list[str], Path]]:
    sides = {
        "edgekit": (edgekit_command(calibration, work / "bundles"), root),
        "bare": ([sys.executable, "-c", BARE, str(MODEL), str(calibration), str(work / "bare.tflite")], work),
        "bare'": ([sys.executable, "-c", BARE, str(MODEL), str(calibration), str(work / "bare2.tflite")], work),
    }
    for index, other in enumerate(compare):
        sides[f"edgekit@{other.name}"] = (edgekit_command(calibration, work / f"compare-{index}"), other)
    return sides


def describe(values: dict[str, list[float]], side: str) -> str:
    wall, rss = np.median(values[side + ":wall_s"]), np.median(values[side + ":peak_rss_mb"])
    return f"{wall:.1f} s, {rss / 1024:.2f} GB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=32, help="calibration samples both sides use")
    parser.add_argument("--edgekit-root", type=Path, default=ROOT, help="checkout to run `python -m edgekit` from")
    parser.add_argument("--compare", type=Path, action="append", default=[], help="another checkout to measure")
    args = parser.parse_args(argv)
    if not MODEL.is_file():
        raise SystemExit(f"{MODEL}: missing; build it with `make mobilenet` (or `make bench`)")
    results = Results("convert_process")
    values: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        work = Path(tmp)
        calibration = work / "calibration.npz"
        with np.load(CALIBRATION) as data:
            if len(data["x"]) < args.samples:
                raise SystemExit(f"{CALIBRATION}: holds {len(data['x'])} samples, fewer than --samples")
            np.savez(calibration, x=data["x"][: args.samples])
        sides = commands(calibration, work, args.edgekit_root.resolve(), [p.resolve() for p in args.compare])
        for index in range(args.rounds):
            names = list(sides)
            names = names[index % len(names) :] + names[: index % len(names)]  # rotate who starts first
            for name in names:
                measured = run_child(*sides[name])
                for key, value in measured.items():
                    values.setdefault(f"{name}:{key}", []).append(value)
                print(
                    f"[convert_process] round {index + 1} {name}: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in measured.items())
                )
        edgekit_bytes = (work / "bundles" / "mobilenet_v2-x86_64" / "model.tflite").stat().st_size
        bare_bytes = (work / "bare.tflite").stat().st_size

    def ratio(measure: str, side: str) -> dict[str, float]:
        return paired_ratio(values[f"{side}:{measure}"], values[f"bare:{measure}"])

    candidates = [name for name in sides if name.startswith("edgekit")]
    for side in candidates:
        for measure, label, goal in (("wall_s", "wall time", GOAL_TIME), ("peak_rss_mb", "peak RSS", GOAL_MEMORY)):
            edgekit, control = ratio(measure, side), ratio(measure, "bare'")
            unit = (lambda v: f"{v:.1f} s") if measure == "wall_s" else (lambda v: f"{v / 1024:.2f} GB")
            checkout = "" if side == "edgekit" else f" (checkout {side.split('@', 1)[1]})"
            results.add(
                row(
                    "4",
                    f"whole process `edgekit convert -q int8`{checkout} / bare TFLiteConverter script: {label}",
                    "mobilenet_v2",
                    None,
                    unit(float(np.median(values[f"{side}:{measure}"]))),
                    f"{unit(float(np.median(values[f'bare:{measure}'])))}; bare'/bare {control['median']:.3f} "
                    f"({control['p25']:.3f}–{control['p75']:.3f})",
                    edgekit["median"],
                    f"≤ {goal}",
                    edgekit["median"] <= goal,
                    ratio_p25=edgekit["p25"],
                    ratio_p75=edgekit["p75"],
                    control=control,
                    cpu_ratio=ratio("cpu_s", side) if measure == "wall_s" else None,
                    rounds=args.rounds,
                    samples=args.samples,
                    per_round=values,
                    edgekit_bytes=edgekit_bytes,
                    bare_bytes=bare_bytes,
                    edgekit_root=str(sides[side][1]),
                )
            )
    control_side = "bare'"
    results.notes.append(
        f"convert as whole processes (median of {args.rounds} rounds): "
        + ", ".join(f"{side} {describe(values, side)}" for side in [*candidates, "bare", control_side])
        + "; CPU time / bare: "
        + ", ".join(f"{side} {ratio('cpu_s', side)['median']:.3f}" for side in [*candidates, control_side])
    )
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
