"""Fidelity, every time: recorded per output in the manifest and the report, and a conversion that misses
the thresholds is refused (exit 4, nothing written) unless --allow-degraded. Also int16x8's checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.bundle import MANIFEST_NAME
from edgekit.conversion import pipeline
from edgekit.conversion.verify import Thresholds, VerificationSet, judge
from edgekit.errors import ConversionError, FidelityError, UsageError
from tests.conftest import MODES, edgekit_cli


def test_fidelity_is_recorded_per_output_in_manifest_and_report(digits_bundles):
    for mode in MODES:
        manifest = json.loads((digits_bundles["bundles"][mode] / MANIFEST_NAME).read_text())
        fidelity = manifest["conversion"]["fidelity"]
        assert fidelity["output"] == "probs"  # the Keras output layer
        assert fidelity["samples"] == 200 and not fidelity["synthetic"] and fidelity["reference"] == "source"
        assert {"max_abs_error", "mean_abs_error", "cosine", "top1_agreement"} <= set(fidelity)
        assert "degraded" not in manifest["conversion"]
        report = digits_bundles["reports"][mode].to_dict()
        assert report["bundles"][0]["fidelity"] == fidelity
        assert report["bundles"][0]["agreement"] == fidelity["top1_agreement"]
        assert report["verification"] == {
            "data": "calibration",
            "samples": 200,
            "labelled": False,
            "source_accuracy": None,
            "reference": "source",
        }


def test_a_broken_int8_conversion_exits_4_and_writes_nothing(outlier, tmp_path):
    out = tmp_path / "out"
    result = edgekit_cli(
        "convert",
        outlier["model"],
        "-t",
        "x86_64",
        "-t",
        "rpi4",
        "-q",
        "int8",
        "--calibration",
        outlier["calibration"],
        "-o",
        out,
    )
    assert result.returncode == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "int8 conversion for x86_64, rpi4 fails the checks" in lines[0]
    assert "top-1 agreement" in lines[0] and "--min-agreement" in lines[0] and "nothing written" in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_allow_degraded_writes_the_bundle_and_says_so(outlier, tmp_path):
    report = pipeline.convert(
        outlier["model"],
        targets=["x86_64"],
        quantization="int8",
        calibration=outlier["calibration"],
        out=tmp_path,
        allow_degraded=True,
    )
    result = report.bundles[0]
    assert result.degraded and any("--min-agreement" in p for p in result.problems)
    assert result.fidelity.top1_agreement < 0.5
    manifest = json.loads((tmp_path / "outlier-x86_64" / MANIFEST_NAME).read_text())
    assert manifest["conversion"]["degraded"] is True and manifest["conversion"]["problems"] == list(result.problems)
    assert any("--allow-degraded" in note for note in report.notes)


def test_thresholds_are_the_flags(outlier, tmp_path):
    """The same conversion passes once the thresholds are lowered below what it reaches, and a float32
    conversion of the same model passes the defaults: the gate is the measured numbers against the flags."""
    report = pipeline.convert(
        outlier["model"],
        targets=["x86_64"],
        quantization="int8",
        calibration=outlier["calibration"],
        out=tmp_path / "loose",
        min_agreement=0.0,
        min_cosine=-1.0,
    )
    assert not report.bundles[0].degraded
    with pytest.raises(FidelityError, match="cosine similarity .* < 0.99"):
        pipeline.convert(
            outlier["model"],
            targets=["x86_64"],
            quantization="int8",
            calibration=outlier["calibration"],
            out=tmp_path / "strict",
            min_agreement=0.0,
            min_cosine=0.99,
        )
    assert not (tmp_path / "strict").exists()
    float32 = pipeline.convert(outlier["model"], targets=["x86_64"], quantization="float32", out=tmp_path / "f32")
    assert float32.bundles[0].fidelity.cosine > 0.9999
    with pytest.raises(UsageError, match="--min-agreement must be between 0 and 1"):
        Thresholds(min_agreement=1.5)


def verification(reference: np.ndarray, synthetic: bool) -> VerificationSet:
    x = np.zeros((len(reference), 2), np.float32)
    return VerificationSet(x, reference, None, "synthetic" if synthetic else "calibration", True, "probs")


def test_agreement_is_not_judged_on_random_inputs():
    """Random inputs give near-tied scores that flip under harmless rounding: only cosine is judged."""
    reference = np.array([[0.50, 0.49, 0.01]] * 10, np.float32)
    flipped = np.array([[0.49, 0.50, 0.01]] * 10, np.float32)  # every top-1 flips, outputs barely move
    on_random = judge(flipped, verification(reference, synthetic=True), Thresholds())
    assert on_random.passed and on_random.fidelity.top1_agreement == 0.0
    on_real = judge(flipped, verification(reference, synthetic=False), Thresholds())
    assert not on_real.passed and "top-1 agreement 0.000 < 0.9" in on_real.problems[0]


@pytest.mark.parametrize("broken", [np.nan, np.inf])
def test_outputs_that_are_not_finite_never_pass(broken):
    """NaN makes every comparison False, so a `cosine < threshold` test alone would wave it through."""
    reference = np.array([[0.7, 0.2, 0.1]] * 10, np.float32)
    outputs = np.full_like(reference, broken)
    for synthetic in (True, False):  # on random inputs only cosine is judged: it must still fail
        verdict = judge(outputs, verification(reference, synthetic=synthetic), Thresholds())
        assert not verdict.passed and "NaN or infinity" in verdict.problems[0]
        fidelity = verdict.fidelity.to_dict()
        assert fidelity["max_abs_error"] is None or np.isfinite(fidelity["max_abs_error"])
        json.dumps(fidelity, allow_nan=False)  # the manifest stays valid JSON


def test_int16x8_converts_checks_and_says_it_is_for_accuracy(digits, tmp_path):
    report = pipeline.convert(
        digits["model"],
        targets=["rpi-armv7"],
        quantization="int16x8",
        calibration=digits["calibration"],
        calibration_size=100,
        out=tmp_path,
    )
    result = report.bundles[0]
    assert result.mode == "int16x8" and result.fidelity.top1_agreement >= 0.98
    assert any("for accuracy, not speed" in note for note in report.notes)
    manifest = json.loads((tmp_path / "digits-rpi-armv7" / MANIFEST_NAME).read_text())
    assert manifest["quantization"] == "int16x8" and "reference kernels" in manifest["conversion"]["note"]
    assert manifest["inputs"][0]["dtype"] == "float32"


def test_int16x8_refusal_at_allocation_is_one_clear_line(vanishing, tmp_path):
    with pytest.raises(ConversionError, match="no_integer_overflow_from_quantization"):
        pipeline.convert(
            vanishing["model"],
            targets=["x86_64"],
            quantization="int16x8",
            calibration=vanishing["calibration"],
            out=tmp_path,
        )
    result = edgekit_cli(
        "convert",
        vanishing["model"],
        "-t",
        "x86_64",
        "-q",
        "int16x8",
        "--calibration",
        vanishing["calibration"],
        "-o",
        tmp_path,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "refuses the converted model when allocating it at node" in line
    assert "vanishing activations" in line and "use int8 or float16" in line
    assert list(tmp_path.iterdir()) == []
