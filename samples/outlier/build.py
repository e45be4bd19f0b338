"""Build a digits classifier whose int8 conversion collapses: one layer has an extreme outlier channel.

A small CNN is trained on scikit-learn's digits (the digits sample's data and split, a few seconds),
then a ReLU layer `spike` is inserted before the classifier: it passes the 32 features through and
adds a 33rd channel, 100x their sum, which the classifier ignores (its weights are zero). The float
model's answers are exactly the trained model's. But int8 quantizes each activation tensor with one
scale: `spike`'s range is stretched to thousands by the outlier channel, every ordinary feature rounds
to zero, and int8 accuracy falls to chance. The same thing happens, less cleanly, in real networks
that grow "massive activations". `edgekit debug` finds `spike`; `convert --auto-keep-float` keeps it
(and the layer reading it) in float and gets the accuracy back.

Writes into samples/outlier/build/ (or --out):
  outlier.keras     the model (input 32x32x1, pixels / 255)
  calibration.npz   300 training images, uint8 pixels (x) and labels (y)
  eval.npz          the held-out evaluation split, uint8 pixels (x) and labels (y)

Usage: python samples/outlier/build.py [--out DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
SEED = 0
FEATURES = 32
OUTLIER_GAIN = 100.0


def digits_sample():
    """The digits sample's own data functions (same images, same split)."""
    spec = importlib.util.spec_from_file_location("digits_train", HERE.parent / "digits" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(out: Path, epochs: int = 20) -> dict:
    """Train, insert the outlier layer, save; returns float accuracy and paths."""
    from edgekit.conversion.quiet import import_keras

    keras = import_keras()  # quietly: TensorFlow logs to the terminal from C++ at import

    digits = digits_sample()
    keras.utils.set_random_seed(SEED)
    images, labels = digits.digit_images()
    train_idx, eval_idx = digits.split(labels)
    x = images.astype(np.float32) / 255.0

    layers = keras.layers
    inputs = keras.Input((digits.SIZE, digits.SIZE, 1), name="image")
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.MaxPooling2D(name="pool1")(h)
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(h)
    h = layers.MaxPooling2D(name="pool2")(h)
    h = layers.Flatten(name="flat")(h)
    features = layers.Dense(FEATURES, activation="relu", name="fc")(h)
    head = layers.Dense(10, activation="softmax", name="head")
    trained = keras.Model(inputs, head(features))
    trained.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    trained.fit(x[train_idx], labels[train_idx], epochs=epochs, batch_size=32, verbose=0)

    spike = layers.Dense(FEATURES + 1, activation="relu", name="spike")
    probs = layers.Dense(10, activation="softmax", name="probs")
    model = keras.Model(inputs, probs(spike(features)), name="outlier")
    kernel = np.zeros((FEATURES, FEATURES + 1), np.float32)
    kernel[:, :FEATURES] = np.eye(FEATURES)
    kernel[:, FEATURES] = OUTLIER_GAIN  # the outlier channel: 100x the sum of the (non-negative) features
    spike.set_weights([kernel, np.zeros(FEATURES + 1, np.float32)])
    head_kernel, head_bias = head.get_weights()
    probs.set_weights([np.concatenate([head_kernel, np.zeros((1, 10), np.float32)]), head_bias])

    predicted = model.predict(x[eval_idx], verbose=0).argmax(axis=1)
    accuracy = float((predicted == labels[eval_idx]).mean())
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "outlier.keras")
    calibration_idx = train_idx[np.linspace(0, len(train_idx) - 1, 300).round().astype(int)]
    np.savez_compressed(out / "calibration.npz", x=images[calibration_idx], y=labels[calibration_idx])
    np.savez_compressed(out / "eval.npz", x=images[eval_idx], y=labels[eval_idx])
    return {"eval_accuracy": accuracy, "model": str(out / "outlier.keras"), "eval": int(len(eval_idx))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    summary = build(args.out, args.epochs)
    print(f"outlier: float accuracy {summary['eval_accuracy']:.4f} on {summary['eval']} images -> {summary['model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
