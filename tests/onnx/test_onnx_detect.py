"""A YOLO-style ONNX detector: boxes (pixels) and class scores (0-1) share one output, [1, 4 + C, anchors].
An int8 output would round every score to 0 or one step of ~1.3 (the boxes set the scale): with
--float-outputs output0 (issue 11's several-outputs work) the int8 bundle keeps that output float."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def detector(onnx_builders, onnx_files, tmp_path_factory):
    from edgekit.conversion.pipeline import convert

    folder = tmp_path_factory.mktemp("onnx-detector")
    path = onnx_builders.save(onnx_builders.yolo_detector(size=64, classes=3, strides=(8,)), folder / "detector.onnx")
    x, _ = onnx_builders.patterns(40, size=64, seed=5)
    np.save(folder / "calibration.npy", x.astype(np.float32) / 255)
    report = convert(path, targets=["x86_64"], quantization="int8", calibration=folder / "calibration.npy",
                     out=folder, allow_degraded=True, float_outputs=["output0"])  # fmt: skip
    return {"report": report, "bundle": folder / "detector-x86_64", "x": x.astype(np.float32) / 255, "onnx": path}


def test_int8_detector_keeps_its_shared_output_float(detector):
    import json

    import onnxruntime

    from edgekit.conversion.tflite_model import TFLiteModel

    manifest = json.loads((detector["bundle"] / "edgekit.json").read_text())
    assert manifest["task"] == "detect" and manifest["outputs"][0]["name"] == "output0"
    model = TFLiteModel((detector["bundle"] / "model.tflite").read_bytes())
    assert model.input.shape == (1, 3, 64, 64) and model.output.shape == (1, 7, 64)
    assert model.output.dtype == "float32"
    session = onnxruntime.InferenceSession(str(detector["onnx"]), providers=["CPUExecutionProvider"])
    reference = np.concatenate([session.run(None, {"images": x[None]})[0] for x in detector["x"][:8]])
    got = model.predict(detector["x"][:8])
    scores, expected = got[:, 4:].reshape(8, -1), reference[:, 4:].reshape(8, -1)
    cosine = (scores * expected).sum(1) / np.linalg.norm(scores, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.mean() > 0.98
