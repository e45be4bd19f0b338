"""More inputs: legacy .h5 files, existing .tflite models (bundled as they are, never re-quantized), and
safe-mode loading that refuses Keras files carrying Python code unless --unsafe-load."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgekit.bundle import MANIFEST_NAME
from edgekit.conversion import pipeline
from edgekit.conversion.load import load_model
from edgekit.errors import InputError
from tests.conftest import MODES, edgekit_cli


def test_keras_files_with_python_code_are_refused_in_safe_mode(code_models, tmp_path):
    for kind in ("keras", "h5"):
        with pytest.raises(InputError, match="refused in safe mode: .*Lambda.*pass --unsafe-load"):
            load_model(code_models[kind])
        assert load_model(code_models[kind], unsafe=True).kind == kind
    result = edgekit_cli("convert", code_models["keras"], "-t", "x86_64", "-q", "float32", "-o", tmp_path / "safe")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "refused in safe mode" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "safe").exists()
    result = edgekit_cli(
        "convert", code_models["h5"], "-t", "x86_64", "-q", "float32", "--unsafe-load", "-o", tmp_path / "unsafe"
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "unsafe" / "lam-x86_64" / MANIFEST_NAME).read_text())
    assert manifest["source"]["kind"] == "h5"


def test_legacy_h5_converts_like_keras(digits, code_models, tmp_path):
    import keras

    h5 = tmp_path / "digits.h5"
    keras.saving.load_model(digits["model"]).save(h5)
    report = pipeline.convert(
        h5,
        targets=["x86_64"],
        quantization="int8",
        calibration=digits["calibration"],
        calibration_size=100,
        eval_data=digits["eval"],
        out=tmp_path / "out",
    )
    result = report.bundles[0]
    assert report.source["kind"] == "h5" and result.fidelity.top1_agreement >= 0.98
    assert result.accuracy.drop_pts <= 1.0
    assert load_model(code_models["plain_h5"]).kind == "h5"  # no code, no opt-in needed


def test_the_mode_of_an_existing_tflite_is_read_from_its_tensors(digits_bundles, tmp_path):
    for mode in MODES:
        assert load_model(digits_bundles["bundles"][mode] / "model.tflite").quantization == mode


def test_an_existing_tflite_is_bundled_as_it_is(digits, digits_bundles, tmp_path):
    model = tmp_path / "digits.tflite"
    shutil.copy(digits_bundles["bundles"]["int8"] / "model.tflite", model)
    report = pipeline.convert(
        model, targets=["x86_64", "rpi-armv7"], eval_data=digits["eval"], labels=digits["labels"], out=tmp_path / "out"
    )
    assert [b.mode for b in report.bundles] == ["int8", "int8"]
    assert report.source["kind"] == "tflite" and report.source["quantization"] == "int8"
    assert report.verification["reference"] == "self" and report.bundles[0].fidelity.reference == "self"
    assert report.bundles[0].fidelity.top1_agreement == 1.0 and report.bundles[0].accuracy.converted > 0.9
    assert any("bundled as it is" in note for note in report.notes)
    bundled = (tmp_path / "out" / "digits-rpi-armv7" / "model.tflite").read_bytes()
    assert bundled == model.read_bytes()
    manifest = json.loads((tmp_path / "out" / "digits-x86_64" / MANIFEST_NAME).read_text())
    assert manifest["source"]["kind"] == "tflite" and manifest["inputs"][0]["dtype"] == "int8"


def test_an_existing_tflite_is_never_requantized(digits_bundles, tmp_path):
    float32 = digits_bundles["bundles"]["float32"] / "model.tflite"
    with pytest.raises(InputError, match="already a float32 .tflite.*does not re-quantize one \\(out of scope\\)"):
        pipeline.convert(float32, targets=["x86_64"], quantization="int8", out=tmp_path)
    with pytest.raises(InputError, match="need the source model"):
        pipeline.convert(float32, targets=["x86_64"], explain=True, out=tmp_path)
    dynamic = digits_bundles["bundles"]["dynamic"] / "model.tflite"
    with pytest.raises(InputError, match="rpi-armv7 .* cannot run dynamic models"):
        pipeline.convert(dynamic, targets=["rpi-armv7"], out=tmp_path)
    result = edgekit_cli("convert", float32, "-t", "x86_64", "-q", "auto", "-o", tmp_path)
    assert result.returncode == 1 and "does not re-quantize" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_broken_tflite_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(60)))  # a TFLite header, then garbage
    with pytest.raises(InputError, match="bad.tflite: .* cannot load this model"):
        load_model(bad)
    bad.write_bytes(b"TFL3" + bytes(range(60)))  # the identifier in the wrong place: not a flatbuffer
    with pytest.raises(InputError, match=r"bad.tflite: not a TFLite model \(no TFL3 identifier\)"):
        load_model(bad)


def test_source_predictions_run_in_slices(digits):
    source = load_model(digits["model"])
    x = np.random.default_rng(0).random((70, 32, 32, 1)).astype(np.float32)
    (whole,) = source.predict_fn({source.inputs[0].name: x})
    (sliced,) = source.predict(x)
    assert sliced.shape == (70, 10)
    np.testing.assert_allclose(sliced, whole, atol=1e-5)


def test_python_warnings_stay_off_the_terminal_unless_verbose(digits, tmp_path, monkeypatch):
    """Keras warns "The structure of inputs doesn't match the expected structure" when it loads some
    legacy .h5 files (raised here by the loader itself, as such a file would); convert keeps Python
    warnings away unless verbose, and then lets them through."""
    import warnings

    import keras

    real_load = keras.saving.load_model

    def legacy_load(*args, **kwargs):
        warnings.warn("The structure of inputs doesn't match the expected structure.", UserWarning, stacklevel=2)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", legacy_load)
    for verbose in (False, True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipeline.convert(
                digits["model"],
                targets=["x86_64"],
                quantization="float32",
                out=tmp_path / str(verbose),
                verbose=verbose,
            )
        structure = [w for w in caught if "structure of inputs" in str(w.message)]
        assert len(structure) == (1 if verbose else 0), [str(w.message) for w in caught]
