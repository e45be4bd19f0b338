"""ARM agreement and emulated latency report: the ARM test matrix, printed as a table.

For every (model, target, mode, runtime) case of tests/arm/test_arm.py: the largest difference between the
emulated ARM output and the x86 output of the same runtime (float: absolute; int8: LSB), whether top-1
agrees, and the emulated invoke p50 (QEMU milliseconds: says nothing about the device, only about the
emulation cost). Needs `make arm-env`.

Usage: .venv/bin/python benchmarks/arm_report.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekit.targets import get_target  # noqa: E402
from tests.arm import test_arm  # noqa: E402
from tests.conftest import load_script  # noqa: E402


def build_cases(work: Path) -> list[dict]:
    train = load_script(ROOT / "samples" / "digits" / "train.py", "digits_train")
    digits_dir = ROOT / "samples" / "digits" / "build"
    if not (digits_dir / "digits.keras").exists():
        train.train(digits_dir, quiet=True)
    digits = {
        "model": digits_dir / "digits.keras",
        "calibration": digits_dir / "calibration.npz",
        "labels": ROOT / "samples" / "digits" / "labels.txt",
        "images": ROOT / "samples" / "digits" / "images",
    }

    return test_arm.build_cases(digits, work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed invokes per case (emulated)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = build_cases(work)
        for case in cases:
            case["repeat"] = args.repeat
        groups = defaultdict(list)
        for case in cases:
            target = get_target(case["target"])
            groups[(test_arm.LAUNCHERS[(target.arch, case["runtime"])], target.qemu_cpu)].append(case)
        emulated, reference, wall = {}, {}, {}
        for (name, cpu), group in groups.items():
            start = time.perf_counter()
            report = test_arm.run_probe([str(test_arm.ARM_BIN / name)], group, work, env={"QEMU_CPU": cpu})
            wall[(name, cpu)] = time.perf_counter() - start
            for case, result in zip(group, report["results"], strict=True):
                emulated[id(case)] = (name, cpu, result)
        for runtime, python in (
            ("ai-edge-litert", [sys.executable]),
            ("tflite-runtime", [str(test_arm.ARM_BIN / test_arm.X86_TFLITE_RUNTIME)]),
        ):
            group = [c for c in cases if c["runtime"] == runtime]
            for case, result in zip(group, test_arm.run_probe(python, group, work)["results"], strict=True):
                reference[id(case)] = result
        columns = ["model", "target", "mode", "runtime", "launcher (QEMU CPU)", "max diff", "top-1 same", "x86 p50 ms"]
        print("| " + " | ".join([*columns, "emulated p50 ms"]) + " |")
        print("|---|---|---|---|---|---|---|---|---|")
        for case in cases:
            name, cpu, arm = emulated[id(case)]
            x86 = reference[id(case)]
            diffs, same = [], True
            for a, b in zip(arm["outputs"], x86["outputs"], strict=True):
                got, want = np.array(a["values"], dtype=np.float64), np.array(b["values"], dtype=np.float64)
                diffs.append(np.abs(got - want).max())
                same &= int(got.argmax()) == int(want.argmax())
            unit = " LSB" if arm["outputs"][0]["dtype"].startswith(("int", "uint")) else ""
            worst = max(diffs)
            shown = f"{worst:.0f}{unit}" if unit else f"{worst:.1e}"
            print(
                f"| {case['model']} | {case['target']} | {case['mode']} | {case['runtime']} {arm['version']} | {name} "
                f"({cpu}) | {shown} | {'yes' if same else 'NO'} | {x86['invoke_ms']:.3f} | {arm['invoke_ms']:.2f} |"
            )
        print()
        for (name, cpu), seconds in wall.items():
            print(f"emulated process {name} ({cpu}): {seconds:.1f} s wall for {len(groups[(name, cpu)])} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
