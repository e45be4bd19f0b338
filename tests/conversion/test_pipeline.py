"""`convert`: every mode, one bundle per target, shared conversions, and clean refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.bundle import MANIFEST_NAME, open_bundle
from edgekit.conversion import pipeline, quantize
from edgekit.errors import InputError, UsageError
from edgekit.runtime.session import Session
from tests.conftest import MODES


def predictions(bundle_path, eval_dir) -> np.ndarray:
    """Top-1 of a bundle on every evaluation image, through the device-side session."""
    files = sorted(eval_dir.rglob("*.png"))
    with open_bundle(bundle_path) as bundle:
        session = Session(bundle, threads=1)
        return np.array([int(np.argmax(session.predict(session.prepare(p))[0])) for p in files])


def test_every_mode_converts_with_the_right_tensors(digits_bundles):
    dtypes = {"float32": "float32", "dynamic": "float32", "float16": "float32", "int8": "int8"}
    for mode in MODES:
        manifest = json.loads((digits_bundles["bundles"][mode] / MANIFEST_NAME).read_text())
        assert manifest["quantization"] == mode
        assert manifest["inputs"][0]["dtype"] == dtypes[mode] == manifest["outputs"][0]["dtype"]
        assert manifest["inputs"][0]["shape"] == [1, 32, 32, 1] and manifest["outputs"][0]["shape"] == [1, 10]
        assert manifest["task"] == "classify" and manifest["labels"] == "labels.txt"
        fidelity = manifest["conversion"]["fidelity"]
        assert fidelity["top1_agreement"] >= 0.98 and fidelity["cosine"] > 0.99


def test_int8_is_small_and_agrees_with_float32(digits_bundles, digits):
    sizes = {m: (digits_bundles["bundles"][m] / "model.tflite").stat().st_size for m in MODES}
    assert sizes["int8"] <= 0.30 * sizes["float32"]
    assert sizes["float16"] < 0.6 * sizes["float32"] and sizes["dynamic"] < 0.4 * sizes["float32"]
    float32 = predictions(digits_bundles["bundles"]["float32"], digits["eval_dir"])
    int8 = predictions(digits_bundles["bundles"]["int8"], digits["eval_dir"])
    assert len(float32) == 360
    assert (float32 == int8).mean() >= 0.98
    labels = np.array([int(p.parent.name) for p in sorted(digits["eval_dir"].rglob("*.png"))])
    assert (int8 == labels).mean() >= 0.9


def test_targets_sharing_a_mode_share_one_conversion(digits, digits_bundles, tmp_path, monkeypatch):
    calls = []
    real = quantize.convert_saved_model

    def counting(export_dir, mode, *args, **kwargs):
        calls.append(mode)
        return real(export_dir, mode, *args, **kwargs)

    monkeypatch.setattr(quantize, "convert_saved_model", counting)
    report = pipeline.convert(
        digits["model"],
        targets=["rpi4", "rpi5", "jetson-orin", "rpi-armv7"],
        quantization="int8",
        calibration=digits["calibration"],
        calibration_size=50,
        out=tmp_path,
    )
    assert calls == ["int8"]  # int8 once for four targets; no float32 conversion just for the size reference
    # The size reference is the float model int8 quantized: a float32 conversion's size, less its metadata.
    float32_bytes = digits_bundles["reports"]["float32"].bundles[0].bytes
    assert 0 < float32_bytes - report.float32_bytes < 1024
    assert report.bundles[0].size_ratio == pytest.approx(report.bundles[0].bytes / report.float32_bytes)
    assert [b.target for b in report.bundles] == ["rpi4", "rpi5", "jetson-orin", "rpi-armv7"]
    models = {(tmp_path / f"digits-{t}" / "model.tflite").read_bytes() for t in ("rpi4", "rpi5", "jetson-orin")}
    assert len(models) == 1
    manifest = json.loads((tmp_path / "digits-rpi-armv7" / MANIFEST_NAME).read_text())
    assert manifest["target"]["runtime"] == "tflite-runtime" and manifest["target"]["arch"] == "armv7l"


def test_refusals_leave_nothing_behind(digits, tmp_path):
    with pytest.raises(InputError, match="int8 needs calibration data"):
        pipeline.convert(digits["model"], targets=["x86_64"], quantization="int8", out=tmp_path)
    with pytest.raises(InputError, match="rpi-armv7.*cannot run dynamic"):
        pipeline.convert(digits["model"], targets=["rpi-armv7"], quantization="dynamic", out=tmp_path)
    with pytest.raises(InputError, match="unknown target"):
        pipeline.convert(digits["model"], targets=["nope"], out=tmp_path)
    with pytest.raises(InputError, match="labels"):
        bad = tmp_path / "labels.txt"
        bad.write_text("a\nb\n")
        pipeline.convert(digits["model"], targets=["x86_64"], quantization="float32", labels=bad, out=tmp_path)
    with pytest.raises(InputError, match=r"samples have shape"):
        np.save(tmp_path / "wrong.npy", np.zeros((4, 8, 8), np.float32))
        pipeline.convert(digits["model"], targets=["x86_64"], calibration=tmp_path / "wrong.npy", out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "wrong.npy"]


def test_existing_bundle_needs_force(digits, tmp_path):
    kwargs = dict(targets=["x86_64"], quantization="float16", out=tmp_path)
    pipeline.convert(digits["model"], **kwargs)
    with pytest.raises(InputError, match="--force"):
        pipeline.convert(digits["model"], **kwargs)
    report = pipeline.convert(digits["model"], force=True, **kwargs)
    assert report.bundles[0].fidelity.synthetic  # no calibration data: checked on random inputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits-x86_64"]


def test_existing_archive_needs_force_too(digits, tmp_path):
    (tmp_path / "digits-x86_64.tar.gz").write_bytes(b"someone else's archive")
    kwargs = dict(targets=["x86_64"], quantization="float32", out=tmp_path, archive=True)
    with pytest.raises(InputError, match=r"digits-x86_64\.tar\.gz: already exists \(use --force"):
        pipeline.convert(digits["model"], **kwargs)
    assert (tmp_path / "digits-x86_64.tar.gz").read_bytes() == b"someone else's archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits-x86_64.tar.gz"]
    pipeline.convert(digits["model"], force=True, **kwargs)
    assert (tmp_path / "digits-x86_64.tar.gz").stat().st_size > 1000


def test_saved_model_and_image_folder_calibration(digits, tmp_path):
    import keras

    model = keras.saving.load_model(digits["model"])
    model.export(str(tmp_path / "saved"), verbose=False)
    report = pipeline.convert(
        tmp_path / "saved",
        targets=["x86_64"],
        quantization="int8",
        calibration=digits["eval_dir"],
        calibration_size=100,
        name="digits-sm",
        out=tmp_path / "out",
        archive=True,
    )
    result = report.bundles[0]
    assert result.fidelity.top1_agreement >= 0.97 and not result.fidelity.synthetic
    archive = tmp_path / "out" / "digits-sm-x86_64.tar.gz"
    assert result.archive == str(archive) and result.archive_bytes == archive.stat().st_size
    with open_bundle(archive) as unpacked:
        assert unpacked.manifest.name == "digits-sm" and unpacked.manifest.quantization == "int8"
    manifest = json.loads((tmp_path / "out" / "digits-sm-x86_64" / MANIFEST_NAME).read_text())
    assert manifest["source"]["kind"] == "saved_model" and manifest["conversion"]["fidelity"]["samples"] == 100


def test_mean_std_are_validated_per_channel_and_written_into_the_bundle(digits, tmp_path):
    from PIL import Image

    with pytest.raises(InputError, match="1 or 1 values"):
        pipeline.convert(digits["model"], targets=["x86_64"], quantization="float32", mean=[1, 2, 3], out=tmp_path)
    pipeline.convert(digits["model"], targets=["x86_64"], quantization="float32", mean=[10], std=[200], out=tmp_path)
    manifest = json.loads((tmp_path / "digits-x86_64" / MANIFEST_NAME).read_text())
    assert manifest["inputs"][0]["preprocess"]["mean"] == [10.0] and manifest["inputs"][0]["preprocess"]["std"] == [
        200.0
    ]
    image = sorted(digits["images"].glob("*.png"))[0]
    pixels = np.asarray(Image.open(image).convert("L").resize((32, 32)), dtype=np.float32)
    with open_bundle(tmp_path / "digits-x86_64") as bundle:
        prepared = Session(bundle, threads=1).prepare(image)
    np.testing.assert_allclose(prepared[0, ..., 0], (pixels - 10.0) / 200.0, rtol=1e-6)
    for bad in ({"std": [float("nan")]}, {"mean": [float("inf")]}):
        with pytest.raises(UsageError, match="must be finite numbers"):
            pipeline.convert(digits["model"], targets=["x86_64"], quantization="float32", out=tmp_path / "x", **bad)


def test_unknown_mode_is_a_usage_error(digits, tmp_path):
    with pytest.raises(UsageError, match=r"unknown quantization mode 'int4' \(known: .*int16x8, auto\)"):
        pipeline.convert(digits["model"], targets=["x86_64"], quantization="int4", out=tmp_path)
