"""The layout contract: a bundle made from ONNX takes and answers tensors in the ONNX model's own
layout, shapes and names (NCHW), for arrays and for images alike."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image


def test_bundle_keeps_nchw_at_its_edges(classifier_bundle):
    manifest = json.loads((classifier_bundle["bundle"] / "edgekit.json").read_text())
    assert [(t["name"], t["shape"]) for t in manifest["inputs"]] == [("images", [1, 3, 32, 32])]
    assert [(t["name"], t["shape"]) for t in manifest["outputs"]] == [("probs", [1, 4])]
    preprocess = manifest.get("preprocess") or manifest["inputs"][0].get("preprocess")
    assert preprocess["layout"] == "NCHW" and preprocess["size"] == [32, 32]
    assert manifest["source"]["format"] == "onnx"
    assert manifest["source"]["layout"] == "nchw-edges"
    assert manifest["source"]["reference"].startswith("onnxruntime ")
    bundle = classifier_bundle["report"].bundles[0]
    assert bundle.fidelity.cosine > 0.98 and bundle.accuracy is not None


def test_bundle_runs_an_nchw_array_like_onnxruntime(classifier_bundle, classifier_modes, onnx_files, tmp_path):
    from edgekit.runtime.session import run

    with np.load(onnx_files["eval"]) as data:
        sample = data["x"][:1]
    np.save(tmp_path / "sample.npy", sample)
    report = run(classifier_bundle["bundle"], [tmp_path / "sample.npy"], warmup=0, repeat=1).to_dict()
    result = report["results"][0] if "results" in report else report["inputs"][0]
    index, score = _top1(result)
    expected = classifier_modes["source"].predict(sample)[0][0]
    assert index == expected.argmax()
    assert abs(score - expected.max()) < 0.05


def test_images_are_preprocessed_into_nchw(classifier_bundle, classifier_modes, onnx_files, tmp_path):
    """A PNG goes through the bundle's preprocessing into NCHW: the answer matches onnxruntime on the
    same pixels laid out as a PyTorch user would (C, H, W) / 255."""
    from edgekit.runtime.session import run

    with np.load(onnx_files["calibration"]) as data:
        pixels = data["x"][3]  # uint8 (3, 32, 32)
    Image.fromarray(pixels.transpose(1, 2, 0)).save(tmp_path / "pattern.png")
    report = run(classifier_bundle["bundle"], [tmp_path / "pattern.png"], warmup=0, repeat=1).to_dict()
    result = report["results"][0] if "results" in report else report["inputs"][0]
    index, score = _top1(result)
    expected = classifier_modes["source"].predict(pixels[None].astype(np.float32) / 255.0)[0][0]
    assert index == expected.argmax()
    assert abs(score - expected.max()) < 0.05


def test_segmentation_output_stays_nchw(onnx_files, tmp_path):
    """A per-pixel NCHW output comes out NCHW (1, 4, 64, 64), values as onnxruntime's."""
    from edgekit.conversion.pipeline import convert
    from edgekit.conversion.tflite_model import TFLiteModel

    report = convert(
        onnx_files["segmenter"],
        targets=["x86_64"],
        quantization="float32",
        calibration=onnx_files["segmenter_calibration"],
        out=tmp_path,
    )
    bundle = report.bundles[0]
    content = (tmp_path / "segmenter-x86_64" / "model.tflite").read_bytes()
    model = TFLiteModel(content)
    assert model.input.shape == (1, 3, 64, 64) and model.output.shape == (1, 4, 64, 64)
    assert bundle.fidelity.cosine > 0.9999


def _top1(result: dict) -> tuple[int, float]:
    """Top-1 (index, score) of a run report's classifier answer."""
    if result.get("top_k"):
        return int(result["top_k"][0]["index"]), float(result["top_k"][0]["score"])
    values = np.asarray(result["outputs"][0]["values"], dtype=np.float32)
    return int(values.argmax()), float(values.max())


def test_two_outputs_come_out_in_onnx_order_names_and_layout(onnx_files, tmp_path):
    """The several-outputs pipeline: an int8 bundle of the two-head model lists logits (1, 5) then the
    NCHW feature map (1, 8, 8, 8), each checked against onnxruntime."""
    from edgekit.conversion.pipeline import convert

    report = convert(onnx_files["two_outputs"], targets=["x86_64"], quantization="int8",
                     calibration=onnx_files["calibration"], out=tmp_path, allow_degraded=True)  # fmt: skip
    manifest = json.loads((tmp_path / "two_outputs-x86_64" / "edgekit.json").read_text())
    assert [(t["name"], t["shape"]) for t in manifest["outputs"]] == [("logits", [1, 5]), ("features", [1, 8, 8, 8])]
    assert manifest["inputs"][0]["name"] == "images" and manifest["inputs"][0]["shape"] == [1, 3, 32, 32]
    fidelity = report.bundles[0].to_dict()["fidelity"]
    print("two outputs int8 fidelity", fidelity)
    assert not report.bundles[0].degraded, report.bundles[0].problems


def test_loading_an_onnx_model_leaves_the_recursion_limit_as_it_was(onnx_files):
    """onnx2tf sets it to the C int maximum on import; left so, a deep recursion later (a deeply nested
    manifest) crashes the process instead of raising RecursionError."""
    import sys

    from edgekit.conversion.load import load_model

    before = sys.getrecursionlimit()
    assert before < 1_000_000  # nothing imported onnx2tf behind the test's back
    load_model(onnx_files["two_outputs"])
    assert sys.getrecursionlimit() == before
