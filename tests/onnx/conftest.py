"""ONNX fixtures: small models built with onnx.helper (samples/onnx/models.py), their data, and the
conversions, each made once per session. Skipped as a whole when the onnx extra is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, load_script

# Looked up, not imported: importing onnx2tf sets the recursion limit to the C int maximum, and edgekit
# only imports it inside a conversion (then restores the limit).
if importlib.util.find_spec("onnx2tf") is None or importlib.util.find_spec("onnxruntime") is None:
    pytest.skip("the onnx extra is not installed (pip install '.[convert,onnx]')", allow_module_level=True)

ALL_MODES = ("float32", "dynamic", "float16", "int8", "int16x8")


@pytest.fixture(scope="session")
def onnx_builders():
    return load_script(ROOT / "samples" / "onnx" / "models.py", "onnx_sample_models")


@pytest.fixture(scope="session")
def onnx_files(onnx_builders, tmp_path_factory) -> dict[str, Path]:
    """Every test model as a .onnx file, with calibration and labelled evaluation data (NCHW)."""
    m = onnx_builders
    out = tmp_path_factory.mktemp("onnx")
    x, y = m.patterns(240, seed=0)
    floats = x.astype(np.float32) / 255.0
    files = {
        "classifier": m.save(m.fit_head(m.classifier(), floats[:120], y[:120], 4), out / "classifier.onnx"),
        "dynamic": m.save(m.fit_head(m.dynamic_classifier(), floats[:120], y[:120], 4), out / "dynamic.onnx"),
        "two_outputs": m.save(m.two_outputs(), out / "two_outputs.onnx"),
        "segmenter": m.save(m.segmenter(), out / "segmenter.onnx"),
        "custom_op": m.save(m.custom_op(), out / "custom_op.onnx"),
        "unsupported_op": m.save(m.unsupported_op(), out / "unsupported_op.onnx"),
    }
    np.savez(out / "calibration.npz", x=x[:120])  # raw uint8 pixels, NCHW, as a PyTorch user holds them
    np.savez(out / "eval.npz", x=floats[120:], y=y[120:])  # preprocessed floats with labels
    seg_x, _ = m.patterns(24, size=64, seed=1)
    np.save(out / "segmenter_calibration.npy", seg_x.astype(np.float32) / 255.0)
    return {**files, "dir": out, "calibration": out / "calibration.npz", "eval": out / "eval.npz",
            "segmenter_calibration": out / "segmenter_calibration.npy"}  # fmt: skip


@pytest.fixture(scope="session")
def classifier_modes(onnx_files) -> dict:
    """The classifier loaded once (one onnx2tf run) and converted to every mode from its SavedModel."""
    from edgekit.conversion.contract import model_inputs
    from edgekit.conversion.inputs import load_samples
    from edgekit.conversion.load import load_model
    from edgekit.conversion.quantize import convert_modes

    source = load_model(onnx_files["classifier"])
    inputs = model_inputs(source.inputs, source.outputs)
    calibration = load_samples(onnx_files["calibration"], inputs).x
    converted, failures, _ = convert_modes(source.saved_model_path, ALL_MODES, source.signature_batch(calibration))
    assert not failures, failures
    return {"source": source, "inputs": inputs, "calibration": calibration, "converted": converted}


@pytest.fixture(scope="session")
def classifier_bundle(onnx_files, tmp_path_factory) -> dict:
    """The classifier through the whole pipeline: an int8 x86_64 bundle and its report."""
    from edgekit.conversion.pipeline import convert

    out = tmp_path_factory.mktemp("onnx-bundles")
    report = convert(
        onnx_files["classifier"],
        targets=["x86_64"],
        quantization="int8",
        calibration=onnx_files["calibration"],
        eval_data=onnx_files["eval"],
        out=out,
    )
    return {"report": report, "bundle": Path(report.bundles[0].path)}
