"""Shared fixtures: the digits sample is trained once per session and converted once per mode."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
MODES = ("float32", "dynamic", "float16", "int8")


def load_script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sample_files(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of each file of a sample, its build folder aside: what training must not touch."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "build" not in p.relative_to(folder).parts and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> dict:
    """The digits sample trained from scratch (seeded) into a temporary folder: model, calibration and
    evaluation splits, the demo images and labels. The sample's own files are left alone."""
    sample = ROOT / "samples" / "digits"
    before = _sample_files(sample)
    train = load_script(sample / "train.py", "digits_train")
    out = tmp_path_factory.mktemp("digits")
    summary = train.train(out, quiet=True, samples=out)
    assert _sample_files(sample) == before, "training the digits fixture changed files under samples/digits"
    return {
        "dir": out,
        "model": out / "digits.keras",
        "calibration": out / "calibration.npz",
        "eval": out / "eval.npz",
        "eval_dir": out / "eval",
        "images": out / "images",
        "labels": out / "labels.txt",
        "accuracy": summary["eval_accuracy"],
    }


@pytest.fixture(scope="session")
def digits_bundles(digits, tmp_path_factory) -> dict:
    """One x86_64 bundle of the digits sample per quantization mode, plus the conversion reports."""
    from edgekit.conversion.pipeline import convert

    out = tmp_path_factory.mktemp("bundles")
    bundles, reports = {}, {}
    for mode in MODES:
        report = convert(
            digits["model"],
            targets=["x86_64"],
            quantization=mode,
            calibration=digits["calibration"],
            labels=digits["labels"],
            name=f"digits-{mode}",
            out=out,
            archive=True,
        )
        bundles[mode] = Path(report.bundles[0].path)
        reports[mode] = report
    return {"dir": out, "bundles": bundles, "reports": reports}


def edgekit_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `edgekit` command in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or ROOT,
        timeout=600,
    )


def cli_json(*args: str, env: dict | None = None) -> tuple[int, dict]:
    result = edgekit_cli(*args, "--json", env=env)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="session")
def multi(tmp_path_factory) -> dict:
    """Small models with several inputs or outputs, trained a few steps, with their data: a two-head
    model (.keras, SavedModel, and a MediaPipe-style float .tflite with 1 input and 2 outputs), a
    two-input model (image + side vector), and a head that packs boxes in pixels beside 0-1 scores."""
    import keras
    import tensorflow as tf

    out = tmp_path_factory.mktemp("multi")
    rng = np.random.default_rng(0)
    images = rng.random((160, 12, 12, 3)).astype(np.float32)
    classes = (images[:, :6].mean(axis=(1, 2, 3)) * 5 * 3 % 5).astype(np.int64)
    boxes = images.mean(axis=(1, 2)) @ rng.random((3, 4)).astype(np.float32)
    heads = _two_heads_model(keras)
    heads.compile("adam", ["mse", "sparse_categorical_crossentropy"])
    heads.fit(images, [boxes, classes], epochs=3, verbose=0)
    heads.save(out / "heads.keras")
    heads.export(str(out / "heads_saved_model"), verbose=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(heads)
    (out / "heads.tflite").write_bytes(converter.convert())
    np.savez(out / "calibration.npz", image=images[:64])
    np.savez(out / "eval.npz", image=images[64:], y=classes[64:], y_zeta_box=boxes[64:])
    np.savez(out / "eval_by_name.npz", image=images[64:], y_alpha_cls=classes[64:])

    keras.utils.set_random_seed(0)
    zimg = keras.Input((8, 8, 1), name="zimg")
    avec = keras.Input((6,), name="avec")
    h = keras.layers.Concatenate(name="join")([keras.layers.Flatten(name="flat")(zimg), avec])
    two_inputs = keras.Model([zimg, avec], keras.layers.Dense(3, activation="softmax", name="probs")(h))
    side = rng.standard_normal((160, 6)).astype(np.float32)
    grey = rng.random((160, 8, 8, 1)).astype(np.float32)
    labels = (side[:, 0] > 0).astype(np.int64) + (grey.mean(axis=(1, 2, 3)) > 0.5)
    two_inputs.compile("adam", "sparse_categorical_crossentropy")
    two_inputs.fit([grey, side], labels, epochs=20, verbose=0)
    two_inputs.save(out / "two_inputs.keras")
    np.savez(out / "two_calibration.npz", zimg=grey[:64], avec=side[:64])
    np.savez(out / "two_eval.npz", zimg=grey[64:], avec=side[64:], y=labels[64:])

    keras.utils.set_random_seed(0)
    image = keras.Input((16, 16, 3), name="image")
    h = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Conv2D(8, 3, activation="relu")(image))
    pixels = keras.layers.Rescaling(300.0, name="box_px")(keras.layers.Dense(4, name="box_dense")(h))
    scores = keras.layers.Dense(3, activation="sigmoid", name="score_dense")(h)
    packed = keras.layers.Concatenate(name="head")([pixels, scores])
    keras.Model(image, [packed, keras.layers.Dense(5, activation="softmax", name="cls")(h)]).save(out / "packed.keras")
    np.savez(out / "packed_calibration.npz", image=rng.random((64, 16, 16, 3)).astype(np.float32))
    return {
        "heads": out / "heads.keras",
        "saved_model": out / "heads_saved_model",
        "tflite": out / "heads.tflite",
        "calibration": out / "calibration.npz",
        "eval": out / "eval.npz",
        "eval_by_name": out / "eval_by_name.npz",
        "two_inputs": out / "two_inputs.keras",
        "two_calibration": out / "two_calibration.npz",
        "two_eval": out / "two_eval.npz",
        "packed": out / "packed.keras",
        "packed_calibration": out / "packed_calibration.npz",
    }


@pytest.fixture(scope="session")
def yolo_like(tmp_path_factory) -> dict:
    """An untrained YOLO-style detector head: one output [1, 4+3, 64] (centre/size boxes in pixels of
    the 16x16 input, then three class scores), with calibration images."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c1")(image)
    boxes = keras.layers.Conv2D(4, 1, activation="sigmoid", name="boxes")(h)
    boxes = keras.layers.Rescaling(16.0, name="pixels")(boxes)
    scores = keras.layers.Conv2D(3, 1, activation="sigmoid", name="scores")(h)
    head = keras.layers.Reshape((64, 7), name="anchors")(keras.layers.Concatenate(name="join")([boxes, scores]))
    model = keras.Model(image, keras.layers.Permute((2, 1), name="head")(head))
    out = tmp_path_factory.mktemp("yolo")
    model.save(out / "yolo.keras")
    np.savez(out / "calibration.npz", image=np.random.default_rng(0).random((48, 16, 16, 3)).astype(np.float32))
    return {"model": out / "yolo.keras", "calibration": out / "calibration.npz"}


def _two_heads_model(keras):
    """One image input, two heads of different shapes whose names sort the other way round than the
    model's order: `zeta_box` (4 regression values) first, then `alpha_cls` (5 class scores)."""
    keras.utils.set_random_seed(0)
    image = keras.Input((12, 12, 3), name="image")
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(image)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    box = keras.layers.Dense(4, name="zeta_box")(h)
    cls = keras.layers.Dense(5, activation="softmax", name="alpha_cls")(h)
    return keras.Model(image, [box, cls])
