"""Train the digits sample: a small CNN on scikit-learn's handwritten digits (shipped with
scikit-learn, no download), seeded and reproducible.

Writes into samples/digits/build/ (or --out):
  digits.keras        the trained Keras 3 model (input 32x32x1, pixels / 255)
  calibration.npz     300 training images as uint8 pixels (x) with labels (y), for int8 calibration
  eval.npz            the held-out evaluation split, uint8 pixels (x) and labels (y)
  eval/<digit>/*.png  the same evaluation split as a folder per class
and, into --samples DIR, images/ (one evaluation image per digit, what `make demo` runs on) and
labels.txt. --samples defaults to samples/digits/ itself only when --out is samples/digits/build/;
a build anywhere else leaves the sample's tracked files alone.

Usage: python samples/digits/train.py [--out DIR] [--samples DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
SIZE = 32
SEED = 0
LABELS = [str(d) for d in range(10)]


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (0-16) as 32x32 uint8 greyscale images (0-255), and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(img, "L").resize((SIZE, SIZE), Image.BILINEAR)) for img in small])
    return big[..., None], digits.target.astype(np.int64)


def split(labels: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """A stratified 80/20 train/eval split of indices."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    return train_test_split(indices, test_size=0.2, random_state=seed, stratify=labels)


def build_model():
    from edgekit.conversion.quiet import import_keras

    keras = import_keras()  # quietly: TensorFlow logs to the terminal from C++ at import

    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.MaxPooling2D(name="pool3")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="digits")


def sample_folder(out: Path) -> Path | None:
    """Where the demo images and labels go by default: the sample's own folder when building the
    sample's own build folder (`make demo`), nowhere otherwise (tests build in temporary folders)."""
    return HERE if Path(out).resolve() == BUILD else None


def train(out: Path, epochs: int = 40, quiet: bool = False, samples: Path | None = None) -> dict:
    """Train and write the sample into `out`; returns the evaluation accuracy and paths.

    `samples` is where `images/` and `labels.txt` go (default: `sample_folder(out)`)."""
    out = Path(out)
    samples = sample_folder(out) if samples is None else Path(samples)
    from edgekit.conversion.quiet import import_keras

    keras = import_keras()  # quietly: TensorFlow logs to the terminal from C++ at import

    keras.utils.set_random_seed(SEED)
    images, labels = digit_images()
    train_idx, eval_idx = split(labels)
    x_train = images[train_idx].astype(np.float32) / 255.0
    y_train = labels[train_idx]
    x_eval = images[eval_idx].astype(np.float32) / 255.0

    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # One line every 10 epochs: the demo's reader wants to see progress, not 40 lines of it.
    progress = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: (
            (epoch + 1) % 10 == 0
            and print(f"digits: epoch {epoch + 1}/{epochs}, train accuracy {logs['accuracy']:.4f}", flush=True)
        )
    )
    callbacks = [] if quiet else [progress]
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0, shuffle=True, callbacks=callbacks)
    accuracy = float((model.predict(x_eval, verbose=0).argmax(axis=1) == labels[eval_idx]).mean())

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "digits.keras")
    calibration_idx = train_idx[np.linspace(0, len(train_idx) - 1, 300).round().astype(int)]
    np.savez_compressed(out / "calibration.npz", x=images[calibration_idx], y=labels[calibration_idx])
    np.savez_compressed(out / "eval.npz", x=images[eval_idx], y=labels[eval_idx])
    write_image_folder(out / "eval", images[eval_idx], labels[eval_idx], eval_idx)
    if samples is not None:
        write_samples(samples / "images", images[eval_idx], labels[eval_idx], eval_idx)
        (samples / "labels.txt").write_text("\n".join(LABELS) + "\n")
    summary = {
        "eval_accuracy": accuracy,
        "train": int(len(train_idx)),
        "eval": int(len(eval_idx)),
        "model": str(out / "digits.keras"),
    }
    (out / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def write_image_folder(folder: Path, images: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> None:
    from PIL import Image

    for image, label, index in zip(images, labels, ids):
        path = folder / str(label) / f"digit-{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0], "L").save(path)


def write_samples(folder: Path, images: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> None:
    """One evaluation image per digit, the few images the demo runs on."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for digit in range(10):
        first = int(np.flatnonzero(labels == digit)[0])
        Image.fromarray(images[first][..., 0], "L").save(folder / f"digit-{digit}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=BUILD)
    parser.add_argument("--samples", type=Path, default=None, help="where images/ and labels.txt go")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    summary = train(args.out, args.epochs, samples=args.samples)
    print(f"digits: eval accuracy {summary['eval_accuracy']:.4f} on {summary['eval']} images -> {summary['model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
