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


@pytest.fixture(scope="module")
def multi_answers(multi_cases, tmp_path_factory) -> list[tuple[dict, dict, dict]]:
    tmp = tmp_path_factory.mktemp("multi-probe")
    groups = defaultdict(list)
    for case in multi_cases:
        target = get_target(case["target"])
        groups[(LAUNCHERS[(target.arch, case["runtime"])], target.qemu_cpu)].append(case)
    emulated = {}
    for (name, cpu), cases in groups.items():
        report = run_probe([str(launcher(name))], cases, tmp, env={"QEMU_CPU": cpu})
        assert report["heavy_modules"] == []
        for case, result in zip(cases, report["results"]):
            emulated[id(case)] = result
    reference = {}
    for runtime, python in (
        ("ai-edge-litert", [sys.executable]),
        ("tflite-runtime", [str(launcher(X86_TFLITE_RUNTIME))]),
    ):
        cases = [c for c in multi_cases if c["runtime"] == runtime]
        report = run_probe(python, cases, tmp)
        for case, result in zip(cases, report["results"]):
            reference[id(case)] = result
    return [(case, emulated[id(case)], reference[id(case)]) for case in multi_cases]


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
