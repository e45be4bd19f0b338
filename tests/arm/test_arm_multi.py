"""Bundles with several inputs and outputs under QEMU: a two-input and a two-head model (float32 and
int8, assembled in tests/runtime/multi_bundles.py) give the same answers, output by output, on emulated
aarch64 (ai-edge-litert, tflite-runtime) and armv7 (tflite-runtime) as on x86; `edgekit run` reports
every output there too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from edgekit.targets import get_target
from tests.arm.test_arm import LAUNCHERS, X86_TFLITE_RUNTIME, compare_outputs, launcher, run_probe
from tests.conftest import ROOT
from tests.runtime.multi_bundles import sample_files

pytestmark = pytest.mark.arm

# (target whose QEMU CPU emulates the device, runtime on the device)
DEVICES = [("rpi4", "ai-edge-litert"), ("rpi4", "tflite-runtime"), ("rpi-armv7", "tflite-runtime")]


@pytest.fixture(scope="module")
def multi_cases(multi_bundles, tmp_path_factory) -> list[dict]:
    for name in (*LAUNCHERS.values(), X86_TFLITE_RUNTIME):
        launcher(name)
    files = sample_files(tmp_path_factory.mktemp("multi-arm-inputs"))
    samples = {
        "two_inputs": [str(files["npz"]), {"image": str(files["photo-0"]), "side": str(files["side"])}],
        "two_heads": [str(files["grey-0"]), str(files["grey-1"])],
    }
    return [
        {
            "target": target,
            "mode": mode,
            "runtime": runtime,
            "bundle": str(multi_bundles[model][mode]),
            "inputs": samples[model],
            "model": model,
        }
        for model in ("two_inputs", "two_heads")
        for mode in ("float32", "int8")
        for target, runtime in DEVICES
    ]


def probe_answers(cases: list[dict], tmp) -> list[tuple[dict, dict, dict]]:
    """(case, ARM answer, x86 answer) for every case: emulated under QEMU per (launcher, CPU) group,
    the x86 reference with the same runtime release."""
    groups = defaultdict(list)
    for case in cases:
        target = get_target(case["target"])
        groups[(LAUNCHERS[(target.arch, case["runtime"])], target.qemu_cpu)].append(case)
    emulated = {}
    for (name, cpu), group in groups.items():
        report = run_probe([str(launcher(name))], group, tmp, env={"QEMU_CPU": cpu})
        assert report["heavy_modules"] == []
        for case, result in zip(group, report["results"]):
            emulated[id(case)] = result
    reference = {}
    for runtime, python in (
        ("ai-edge-litert", [sys.executable]),
        ("tflite-runtime", [str(launcher(X86_TFLITE_RUNTIME))]),
    ):
        group = [c for c in cases if c["runtime"] == runtime]
        report = run_probe(python, group, tmp)
        for case, result in zip(group, report["results"]):
            reference[id(case)] = result
    return [(case, emulated[id(case)], reference[id(case)]) for case in cases]


@pytest.fixture(scope="module")
def multi_answers(multi_cases, tmp_path_factory) -> list[tuple[dict, dict, dict]]:
    return probe_answers(multi_cases, tmp_path_factory.mktemp("multi-probe"))


@pytest.fixture(scope="module")
def converted_cases(multi, yolo_like, tmp_path_factory) -> list[dict]:
    """What `edgekit convert` makes of the several-output models: a two-head Keras model and a
    two-input one (int8, calibrated), a MediaPipe-style .tflite with one input and two outputs (as it
    is), and a YOLO-style detector (int8, task detect)."""
    import numpy as np

    from edgekit.conversion.pipeline import convert

    out = tmp_path_factory.mktemp("converted-multi")
    made = {
        "heads": (multi["heads"], {"quantization": "int8", "calibration": multi["calibration"]}, multi["calibration"]),
        "two_inputs": (
            multi["two_inputs"],
            {"quantization": "int8", "calibration": multi["two_calibration"]},
            multi["two_calibration"],
        ),
        "mediapipe_style": (multi["tflite"], {}, multi["calibration"]),
        "yolo": (yolo_like["model"], {"quantization": "int8", "calibration": yolo_like["calibration"],
                                      "task": "detect"}, yolo_like["calibration"]),
    }  # fmt: skip
    cases = []
    for model, (path, options, data) in made.items():
        convert(path, targets=["rpi4"], name=model, out=out, allow_degraded=True, **options)
        with np.load(data) as arrays:  # two samples, keyed by input name
            for i in range(2):
                np.savez(out / f"{model}-{i}.npz", **{key: arrays[key][i : i + 1] for key in arrays.files})
        inputs = [str(out / f"{model}-{i}.npz") for i in range(2)]
        for target, runtime in DEVICES:
            bundle = str(out / f"{model}-rpi4")
            cases.append(
                {
                    "target": target,
                    "mode": model,
                    "runtime": runtime,
                    "bundle": bundle,
                    "inputs": inputs,
                    "model": model,
                }
            )
    return cases


def test_converted_several_output_models_agree_with_x86(converted_cases, tmp_path):
    answers = probe_answers(converted_cases, tmp_path)
    failures = [line for case, arm, x86 in answers for line in compare_outputs(case, arm, x86)]
    assert not failures, "\n".join(failures)
    for case, arm, _ in answers:
        manifest = json.loads((ROOT / case["bundle"] / "edgekit.json").read_text())
        assert len(arm["outputs"]) == len(manifest["outputs"]) * len(case["inputs"]) >= 2


def test_every_output_agrees_with_x86(multi_answers):
    failures = [line for case, arm, x86 in multi_answers for line in compare_outputs(case, arm, x86)]
    assert not failures, "\n".join(failures)
    for case, arm, _ in multi_answers:  # every sample reported every output, in the manifest's order
        manifest = json.loads((ROOT / case["bundle"] / "edgekit.json").read_text())
        names = [o["name"] for o in manifest["outputs"]]
        assert [o["name"] for o in arm["outputs"]] == names * len(case["inputs"])


def test_edgekit_run_on_arm_reports_every_output(multi_cases, tmp_path):
    case = next(c for c in multi_cases if c["model"] == "two_inputs" and c["mode"] == "int8")
    given = case["inputs"][1]
    result = subprocess.run(
        [
            str(launcher(LAUNCHERS[("aarch64", "ai-edge-litert")])),
            "-m", "edgekit", "run", case["bundle"], case["inputs"][0],
            "--input", f"image={given['image']}", "--input", f"side={given['side']}",
            "--save-outputs", str(tmp_path / "out"), "--json", "--repeat", "3", "--warmup", "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["arch"] == "aarch64" and report["emulated"] is True
    assert [len(r["outputs"]) for r in report["results"]] == [2, 2]
    scores = next(o for o in report["results"][0]["outputs"] if o["name"] == "scores")
    assert scores["top_k"][0]["label"] in ("cat", "dog", "bird", "fish", "frog")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "pair.heat_map_0.npy",
        "pair.scores.npy",
        "photo-0.heat_map_0.npy",
        "photo-0.scores.npy",
    ]
