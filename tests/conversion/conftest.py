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
