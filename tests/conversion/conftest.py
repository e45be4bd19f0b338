"""Models the conversion checks are proven on, each built once per session: the outlier model whose
int8 accuracy collapses, a model with vanishing activations that int16x8 cannot run, and Keras files
that carry Python code (for safe-mode loading)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, load_script


@pytest.fixture(scope="session")
def outlier(tmp_path_factory) -> dict:
    """samples/outlier: a digits CNN with one outlier-channel layer (`spike`); int8 falls to chance."""
    build = load_script(ROOT / "samples" / "outlier" / "build.py", "outlier_build")
    out = tmp_path_factory.mktemp("outlier")
    summary = build.build(out)
    assert summary["eval_accuracy"] > 0.9  # the float model is a good classifier
    return {
        "model": out / "outlier.keras",
        "calibration": out / "calibration.npz",
        "eval": out / "eval.npz",
        "accuracy": summary["eval_accuracy"],
    }


@pytest.fixture(scope="session")
def vanishing(tmp_path_factory) -> dict:
    """A tiny classifier whose ReLU6 convolution outputs ~1e-7: int16x8 gives it an activation scale so
    small that quantizing 6.0 overflows, and the interpreter refuses the model at allocation."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="x")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu6", name="faint")(inputs)
    h = keras.layers.Flatten(name="flat")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs)
    faint = model.get_layer("faint")
    kernel, bias = faint.get_weights()
    faint.set_weights([kernel * 1e-7, bias * 0])
    out = tmp_path_factory.mktemp("vanishing")
    model.save(out / "vanishing.keras")
    rng = np.random.default_rng(0)
    np.savez(out / "calibration.npz", x=rng.random((16, 8, 8, 1)).astype(np.float32))
    return {"model": out / "vanishing.keras", "calibration": out / "calibration.npz"}


@pytest.fixture(scope="session")
def code_models(tmp_path_factory) -> dict[str, Path]:
    """The same small model with a Lambda layer (Python code in the file) as .keras and .h5, and a plain
    .h5 without code."""
    import keras

    out = tmp_path_factory.mktemp("code")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="x")
    doubled = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="probs")(doubled)).save(out / "lam.keras")
    keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="probs")(doubled)).save(out / "lam.h5")
    plain = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="probs")(inputs))
    plain.save(out / "plain.h5")
    return {"keras": out / "lam.keras", "h5": out / "lam.h5", "plain_h5": out / "plain.h5"}


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
