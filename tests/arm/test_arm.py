"""The device half under QEMU user-mode emulation: the same bundles must give the same answers on
emulated aarch64 and armv7 as on x86, with the real ARM builds of Python, numpy, Pillow and the runtimes.

Needs `make arm-env` (part of `make test`). Outside CI the tests skip when it has not been built;
in CI (CI=true) a missing environment is a failure, never a silent skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from edgekit.targets import get_target
from tests.conftest import ROOT, load_script

pytestmark = pytest.mark.arm

ARM_BIN = ROOT / ".arm" / "bin"
PROBE = Path(__file__).with_name("probe.py")
LAUNCHERS = {
    ("aarch64", "ai-edge-litert"): "python-arm64-litert",
    ("aarch64", "tflite-runtime"): "python-arm64-tflite-runtime",
    ("armv7l", "tflite-runtime"): "python-armv7-tflite-runtime",
}
X86_TFLITE_RUNTIME = "python-x86_64-tflite-runtime"
# (target, mode, runtime on the device): every mode each target's profile accepts, on the runtime the
# profile names and under its own QEMU CPU; the ai-edge-litert targets' float32 and int8 bundles also
# under tflite-runtime, the fallback a device without a LiteRT wheel uses.
DIGITS_CASES = [
    *[
        (t.name, m, t.runtime)
        for t in map(get_target, ("rpi4", "rpi5", "jetson-orin", "jetson-nano", "rpi-armv7"))
        for m in t.modes
    ],
    *[(t, m, "tflite-runtime") for t in ("rpi4", "rpi5", "jetson-orin") for m in ("float32", "int8")],
]
MOBILENET_CASES = [
    ("rpi4", "float32", "ai-edge-litert"),
    ("rpi4", "int8", "ai-edge-litert"),
    ("rpi-armv7", "int8", "tflite-runtime"),
]


def launcher(name: str) -> Path:
    path = ARM_BIN / name
    if not os.access(path, os.X_OK):
        message = f"{path} missing: run `make arm-env`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def arm_bundles(digits, tmp_path_factory) -> list[dict]:
    for name in (*LAUNCHERS.values(), X86_TFLITE_RUNTIME):
        launcher(name)
    return build_cases(digits, tmp_path_factory.mktemp("arm-bundles"))


def build_cases(digits: dict, out: Path) -> list[dict]:
    """Digits bundles for every (target, mode) above, and a MobileNetV2-sized model for rpi4 and rpi-armv7."""
    from edgekit.conversion.pipeline import convert

    wanted = defaultdict(set)
    for target, mode, _ in DIGITS_CASES:
        wanted[mode].add(target)
    for mode, targets in wanted.items():  # one conversion per mode, a bundle per target under out/MODE/
        convert(
            digits["model"],
            targets=sorted(targets),
            quantization=mode,
            calibration=digits["calibration"],
            calibration_size=100,
            labels=digits["labels"],
            out=out / mode,
        )
    images = [str(digits["images"] / f"digit-{d}.png") for d in (0, 3, 7, 8)]
    cases = [
        {
            "target": t,
            "mode": m,
            "runtime": r,
            "bundle": str(out / m / f"digits-{t}"),
            "inputs": images,
            "model": "digits",
        }
        for t, m, r in DIGITS_CASES
    ]

    mobilenet = load_script(ROOT / "samples" / "mobilenet" / "build.py", "mobilenet_build")
    mdir = out / "mobilenet-model"
    model = mobilenet.build(mdir, samples=16)
    for mode, targets in (("float32", ["rpi4"]), ("int8", ["rpi4", "rpi-armv7"])):
        convert(
            model,
            targets=targets,
            quantization=mode,
            calibration=mdir / "calibration.npz",
            calibration_size=16,
            mean=[127.5],
            std=[127.5],
            out=out / f"mobilenet-{mode}",
        )
    image = str(sorted((mdir / "images").iterdir())[0])
    cases += [
        {
            "target": t,
            "mode": m,
            "runtime": r,
            "bundle": str(out / f"mobilenet-{m}" / f"mobilenet_v2-{t}"),
            "inputs": [image],
            "model": "mobilenet_v2",
        }
        for t, m, r in MOBILENET_CASES
    ]
    return cases


def run_probe(python: list[str], cases: list[dict], tmp_path: Path, env: dict | None = None) -> dict:
    spec = tmp_path / f"cases-{abs(hash(tuple(python)))}-{len(cases)}.json"
    spec.write_text(json.dumps([{k: c[k] for k in ("bundle", "inputs", "runtime", "repeat") if k in c} for c in cases]))
    result = subprocess.run(
        [*python, str(PROBE), str(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        # This checkout's edgekit for the x86 reference too (the ARM launchers set their own path).
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def answers(arm_bundles, tmp_path_factory) -> list[tuple[dict, dict, dict]]:
    """(case, emulated result, x86 result) for every case; emulated runs batched per launcher and CPU."""
    tmp = tmp_path_factory.mktemp("probe")
    groups = defaultdict(list)
    for case in arm_bundles:
        target = get_target(case["target"])
        groups[(LAUNCHERS[(target.arch, case["runtime"])], target.qemu_cpu)].append(case)
    emulated = {}
    for (name, cpu), cases in groups.items():
        report = run_probe([str(launcher(name))], cases, tmp, env={"QEMU_CPU": cpu})
        assert report["arch"] == ("armv7l" if "armv7" in name else "aarch64")
        assert report["heavy_modules"] == []
        for case, result in zip(cases, report["results"]):
            emulated[id(case)] = result
    reference = {}
    for runtime, python in (
        ("ai-edge-litert", [sys.executable]),
        ("tflite-runtime", [str(launcher(X86_TFLITE_RUNTIME))]),
    ):
        cases = [c for c in arm_bundles if c["runtime"] == runtime]
        report = run_probe(python, cases, tmp)
        assert report["arch"] == "x86_64"
        assert report["heavy_modules"] == []  # the x86 venv has TensorFlow installed: still never imported
        for case, result in zip(cases, report["results"]):
            reference[id(case)] = result
    return [(case, emulated[id(case)], reference[id(case)]) for case in arm_bundles]


def case_id(case: dict) -> str:
    return f"{case['model']}-{case['target']}-{case['mode']}-{case['runtime']}"


def compare_outputs(case: dict, arm: dict, x86: dict) -> list[str]:
    """Every output of every sample, ARM against x86: integer tensors within 1 LSB, float ones within
    1e-5, and the same arg-max. Returns one line per disagreement."""
    assert arm["runtime"] == x86["runtime"] == case["runtime"]
    assert arm["version"] == x86["version"], case_id(case)  # the same release on both sides
    failures = []
    for a, b in zip(arm["outputs"], x86["outputs"], strict=True):
        assert (a["input"], a["name"], a["dtype"]) == (b["input"], b["name"], b["dtype"])
        got, want = np.array(a["values"]), np.array(b["values"])
        if a["dtype"].startswith("int") or a["dtype"].startswith("uint"):
            worst = int(np.abs(got.astype(np.int64) - want.astype(np.int64)).max())
            ok = worst <= 1
        else:
            worst = float(np.abs(got - want).max())
            ok = worst <= 1e-5
        if not ok or int(got.argmax()) != int(want.argmax()):
            failures.append(
                f"{case_id(case)} {a['input']} {a['name']}: max diff {worst}, arg-max {got.argmax()} vs {want.argmax()}"
            )
    return failures


def test_every_case_agrees_with_x86(answers):
    failures = [line for case, arm, x86 in answers for line in compare_outputs(case, arm, x86)]
    assert not failures, "\n".join(failures)


def test_digits_answers_are_right_on_arm(answers):
    for case, arm, _ in answers:
        if case["model"] != "digits":
            continue
        for output in arm["outputs"]:
            digit = int(output["input"].rsplit("digit-", 1)[1][0])
            assert int(np.argmax(output["values"])) == digit, case_id(case)


@pytest.mark.parametrize("name", sorted(LAUNCHERS.values()))
def test_edgekit_run_cli_reports_emulation(name, arm_bundles):
    case = next(
        c
        for c in arm_bundles
        if LAUNCHERS.get((("armv7l" if "armv7" in name else "aarch64"), c["runtime"])) == name
        and c["model"] == "digits"
        and c["mode"] == "int8"
        and (c["target"] == "rpi-armv7") == ("armv7" in name)
    )
    result = subprocess.run(
        [
            str(launcher(name)),
            "-m",
            "edgekit",
            "run",
            case["bundle"],
            case["inputs"][0],
            "--json",
            "--repeat",
            "5",
            "--warmup",
            "1",
            "--budget-ms",
            "0.000001",
            "--runtime",
            case["runtime"],
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr  # over budget, but emulated: reported, not enforced
    report = json.loads(result.stdout)
    assert report["emulated"] is True and report["budget_enforced"] is False and report["within_budget"] is False
    assert report["arch"] == ("armv7l" if "armv7" in name else "aarch64")
    assert report["runtime"] == case["runtime"] and report["runtime_version"][0].isdigit()
    assert report["results"][0]["top_k"][0]["label"] == "0"
