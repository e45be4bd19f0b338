"""ONNX bundles under QEMU: the NCHW-edged .tflite gives the same answers on emulated aarch64 (LiteRT)
and armv7 (tflite-runtime 2.14) as on x86, through the device half's own preprocessing of images."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from edgekit.targets import get_target
from tests.arm.test_arm import LAUNCHERS, X86_TFLITE_RUNTIME, launcher, run_probe

pytestmark = pytest.mark.arm

CASES = (  # (model, target, mode, runtime)
    ("classifier", "rpi4", "int8", "ai-edge-litert"),
    ("classifier", "rpi4", "float32", "ai-edge-litert"),
    ("segmenter", "rpi4", "float16", "ai-edge-litert"),
    ("classifier", "rpi-armv7", "int8", "tflite-runtime"),
    ("segmenter", "rpi-armv7", "int8", "tflite-runtime"),
)


@pytest.fixture(scope="module")
def onnx_arm_cases(onnx_files, tmp_path_factory) -> list[dict]:
    from edgekit.conversion.pipeline import convert

    for name in (*LAUNCHERS.values(), X86_TFLITE_RUNTIME):
        launcher(name)
    out = tmp_path_factory.mktemp("onnx-arm")
    calibration = {"classifier": onnx_files["calibration"], "segmenter": onnx_files["segmenter_calibration"]}
    images = {}
    for model, size in (("classifier", 32), ("segmenter", 64)):
        rng = np.random.default_rng(size)
        images[model] = []
        for i in range(2):
            path = out / f"{model}-{i}.png"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
            images[model].append(str(path))
    cases = []
    for model, target, mode, runtime in CASES:
        folder = out / f"{model}-{mode}"
        if not (folder / f"{model}-{target}").exists():
            convert(onnx_files[model], targets=[target], quantization=mode, calibration=calibration[model],
                    out=folder, allow_degraded=True)  # fmt: skip
        bundle = str(folder / f"{model}-{target}")
        cases.append(
            {
                "bundle": bundle,
                "inputs": images[model],
                "runtime": runtime,
                "target": target,
                "id": f"{model}-{target}-{mode}",
            }
        )  # noqa: E501
    return cases


def test_onnx_bundles_agree_on_arm_and_x86(onnx_arm_cases, tmp_path):
    failures = []
    for case in onnx_arm_cases:
        target = get_target(case["target"])
        arm = run_probe([str(launcher(LAUNCHERS[(target.arch, case["runtime"])]))], [case], tmp_path,
                        env={"QEMU_CPU": target.qemu_cpu})["results"][0]  # fmt: skip
        x86_python = [str(launcher(X86_TFLITE_RUNTIME))] if case["runtime"] == "tflite-runtime" else None
        x86 = run_probe(x86_python or [sys.executable], [case], tmp_path)["results"][0]
        for a, b in zip(arm["outputs"], x86["outputs"], strict=True):
            got, want = np.array(a["values"]), np.array(b["values"])
            integer = a["dtype"].startswith(("int", "uint"))
            worst = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
            if worst > (1 if integer else 1e-4) or (got.size < 100 and got.argmax() != want.argmax()):
                failures.append(f"{case['id']} {case['runtime']} {a['input']}: max diff {worst}")
    assert not failures, "\n".join(failures)
