"""When int8 goes wrong: the layer report finds the outlier layer, and keeping it in float brings the
accuracy back, in `edgekit debug`, `convert --keep-float`, `--auto-keep-float` and `--explain`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit import defaults
from edgekit.bundle import MANIFEST_NAME, open_bundle
from edgekit.conversion import pipeline
from edgekit.conversion.debug import debug
from edgekit.conversion.layer_errors import layer_name, verified_tensor_name
from edgekit.errors import InputError, UsageError
from edgekit.runtime.preprocess import as_model_input, quantize
from edgekit.runtime.session import Session
from tests.conftest import cli_json, edgekit_cli


@pytest.fixture(scope="module")
def outlier_debug(outlier):
    return debug(outlier["model"], outlier["calibration"], eval_data=outlier["eval"])


def test_the_outlier_layer_ranks_first(outlier_debug):
    worst, *rest = outlier_debug.layers
    assert (worst.layer, worst.op) == ("spike", "FULLY_CONNECTED")
    # Only spike is a suspect; probs, which reads spike's stretched output, measures 0.11 here.
    assert worst.channel_error > 0.5 and all(layer.channel_error < defaults.SUSPECT_ERROR for layer in rest)
    assert outlier_debug.suspects == ("spike",)
    assert worst.readers and "probs" in worst.readers[0]  # the layer that reads spike's output
    # TFLite's usual rmse/scale calls spike's rounding ideal: the steps are right, they are just huge.
    assert worst.rmse_over_scale < 0.5 and worst.value_range > 1000
    assert [layer.channel_error for layer in outlier_debug.layers] == sorted(
        (layer.channel_error for layer in outlier_debug.layers), reverse=True
    )


def test_keeping_the_worst_layer_in_float_recovers_the_accuracy(outlier_debug, outlier):
    int8 = outlier_debug.int8.verdict.accuracy
    assert int8.source == pytest.approx(outlier["accuracy"], abs=1e-3)
    assert int8.converted < 0.5  # int8 really suffers
    suggestion = outlier_debug.suggestion
    assert suggestion.chosen.layers == ("spike",) and suggestion.chosen.verdict.passed
    assert suggestion.chosen.float_layers == ("spike", "probs")
    mixed = suggestion.chosen.verdict.accuracy
    recovered = (mixed.converted - int8.converted) / (int8.source - int8.converted)
    assert recovered >= 0.9 and mixed.drop_pts <= 1.0
    assert outlier_debug.int8.bytes < suggestion.chosen.bytes < 2 * outlier_debug.int8.bytes


def test_convert_keep_float_bundles_the_mixed_model(outlier, tmp_path):
    report = pipeline.convert(
        outlier["model"],
        targets=["x86_64", "rpi-armv7"],
        quantization="int8",
        calibration=outlier["calibration"],
        eval_data=outlier["eval"],
        keep_float=["spike"],
        out=tmp_path,
    )
    result = report.bundles[0]
    assert result.keep_float == ("spike",) and not result.degraded
    assert result.accuracy.converted >= result.accuracy.source - 0.01
    assert report.keep_float.how == "requested" and report.keep_float.int8.verdict.accuracy.converted < 0.5
    manifest = json.loads((tmp_path / "outlier-rpi-armv7" / MANIFEST_NAME).read_text())
    assert manifest["quantization"] == "int8" and manifest["conversion"]["keep_float"] == ["spike"]
    assert manifest["inputs"][0]["dtype"] == "int8"  # still a full-integer interface
    # The device half runs it as it runs any bundle.
    data = np.load(outlier["eval"])
    with open_bundle(tmp_path / "outlier-x86_64") as bundle:
        session = Session(bundle, threads=1)
        spec, preprocess = session.input_spec, bundle.manifest.preprocess
        tensors = [quantize(as_model_input(x, spec, preprocess, "eval"), spec) for x in data["x"][:40]]
        answers = [int(np.argmax(session.predict(tensor)[0])) for tensor in tensors]
    assert np.mean(np.array(answers) == data["y"][:40]) >= 0.85


def test_auto_keep_float_and_explain_in_the_convert_report(outlier, tmp_path):
    report = pipeline.convert(
        outlier["model"],
        targets=["x86_64"],
        quantization="int8",
        calibration=outlier["calibration"],
        eval_data=outlier["eval"],
        auto_keep_float=True,
        explain=True,
        out=tmp_path,
    )
    assert report.explain.layers[0].layer == "spike"
    assert [step.layers for step in report.keep_float.steps] == [("spike",)]
    assert report.bundles[0].keep_float == ("spike",) and not report.bundles[0].degraded
    data = report.to_dict()
    assert (
        data["keep_float"]["mixed"]["accuracy"]["converted"] >= data["keep_float"]["int8"]["accuracy"]["source"] - 0.01
    )
    assert data["explain"]["layers"][0]["layer"] == "spike"


def test_auto_keep_float_keeps_nothing_when_int8_passes(digits, tmp_path):
    report = pipeline.convert(
        digits["model"],
        targets=["x86_64"],
        quantization="int8",
        calibration=digits["calibration"],
        calibration_size=100,
        auto_keep_float=True,
        out=tmp_path,
    )
    assert report.keep_float.chosen.layers == () and report.keep_float.steps == ()
    assert report.bundles[0].keep_float == ()


def test_explain_does_not_change_what_auto_keep_float_bundles(digits, tmp_path):
    """--explain only reports: with plain int8 passing, --auto-keep-float still keeps nothing in float."""
    kwargs = dict(targets=["x86_64"], quantization="int8", calibration=digits["calibration"], calibration_size=100)
    plain = pipeline.convert(digits["model"], out=tmp_path / "plain", **kwargs)
    explained = pipeline.convert(digits["model"], out=tmp_path / "x", auto_keep_float=True, explain=True, **kwargs)
    assert explained.explain is not None and explained.explain.layers
    assert explained.bundles[0].keep_float == () and explained.keep_float.chosen.layers == ()
    assert explained.bundles[0].bytes == plain.bundles[0].bytes


def test_keep_float_refusals(outlier, digits, tmp_path):
    with pytest.raises(
        InputError, match=r"--keep-float nope: no quantized layer of that name \(layers, worst first: spike"
    ):
        pipeline.convert(
            outlier["model"],
            targets=["x86_64"],
            quantization="int8",
            calibration=outlier["calibration"],
            keep_float=["nope"],
            out=tmp_path,
        )
    with pytest.raises(UsageError, match="apply to int8"):
        pipeline.convert(digits["model"], targets=["x86_64"], quantization="float16", keep_float=["fc"], out=tmp_path)
    with pytest.raises(UsageError, match="use one"):
        pipeline.convert(
            digits["model"],
            targets=["x86_64"],
            quantization="int8",
            calibration=digits["calibration"],
            keep_float=["fc"],
            auto_keep_float=True,
            out=tmp_path,
        )
    assert list(tmp_path.iterdir()) == []


def test_debug_accuracy_gate_needs_labels(digits):
    from edgekit.conversion.verify import Thresholds

    with pytest.raises(UsageError, match="--max-accuracy-drop needs labelled --eval-data"):
        debug(digits["model"], digits["calibration"], thresholds=Thresholds(max_accuracy_drop=1.0))


def test_debug_command(outlier):
    code, report = cli_json(
        "debug", outlier["model"], "--calibration", outlier["calibration"], "--eval-data", outlier["eval"]
    )
    assert code == 0
    assert report["layers"][0]["layer"] == "spike" and report["layers"][0]["suspect"]
    assert report["suggestion"]["layers"] == ["spike"] and report["suggestion"]["mixed"]["passed"]
    assert report["int8"]["accuracy"]["converted"] < 0.5
    text = edgekit_cli("debug", outlier["model"], "--calibration", outlier["calibration"], "--no-search")
    assert text.returncode == 0, text.stderr
    assert "spike" in text.stdout and "FAILS" in text.stdout and "suspect layers" in text.stdout


def test_tensor_and_layer_names():
    assert (
        verified_tensor_name("NumericVerify/m_1/spike_1/MatMul;m_1/spike_1/Relu1:51")
        == "m_1/spike_1/MatMul;m_1/spike_1/Relu"
    )
    assert verified_tensor_name("NumericVerify/StatefulPartitionedCall_1:02:59") == "StatefulPartitionedCall_1:0"
    known = frozenset({"conv1", "Conv_1", "block_1_expand"})
    assert layer_name("m_1/conv1_1/Relu;m_1/conv1_1/BiasAdd", known) == "conv1"
    assert layer_name("m_1/Conv_1_1/Relu6", known) == "Conv_1"
    assert layer_name("m_1/block_1_expand_1/Conv2D", known) == "block_1_expand"
    assert layer_name("StatefulPartitionedCall_1:0", known) == ""
    assert layer_name("model/dense_3/MatMul", frozenset()) == "dense"
