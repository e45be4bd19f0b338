"""Build a small two-head model, trained here in seconds with no download: one coloured square drawn on
noise per 32x32 image; the model answers where it is and what colour it is.

Outputs, in this order (their names sort the other way round, on purpose):
  `where`   [1, 5]: the square's box in pixels (x1, y1, x2, y2) and a 0-1 "is there a square" score,
            packed in one tensor, as many detector heads do. One int8 scale for values up to 32 and
            for a 0-1 score rounds the score away: `edgekit convert -q int8` refuses the bundle, and
            `--auto-keep-float` (or `--float-outputs where`) keeps this output in float.
  `colour`  [1, 3]: red, green or blue (softmax), labelled in eval.npz as `y_colour`.

Writes into samples/multi/build/ (or --out):
  multi.keras       the model (input 32x32x3 RGB, pixels / 255)
  calibration.npz   200 images, uint8 pixels under the input's name (`image`)
  eval.npz          200 other images (`image`) with `y_colour` (class indices)
  labels.txt        red, green, blue

Usage: python samples/multi/build.py [--out DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
SIZE = 32
COLOURS = ("red", "green", "blue")


def make_data(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 images, boxes in pixels + score 1, colour indices)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (count, SIZE, SIZE, 3)).astype(np.uint8)
    where = np.zeros((count, 5), np.float32)
    colours = rng.integers(0, 3, count)
    for i in range(count):
        side = int(rng.integers(8, 16))
        x, y = (int(v) for v in rng.integers(0, SIZE - side, 2))
        images[i, y : y + side, x : x + side, colours[i]] = 230
        where[i] = (x, y, x + side, y + side, 1.0)
    return images, where, colours.astype(np.int64)


def build(out: Path, epochs: int = 12) -> dict:
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((SIZE, SIZE, 3), name="image")
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="c1")(image)
    h = keras.layers.Conv2D(32, 3, strides=2, activation="relu", name="c2")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dense(64, activation="relu", name="fc")(h)
    box = keras.layers.Dense(4, name="box")(h)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(h)
    where = keras.layers.Concatenate(name="where")([box, score])
    colour = keras.layers.Dense(3, activation="softmax", name="colour")(h)
    model = keras.Model(image, [where, colour])
    model.compile(keras.optimizers.Adam(2e-3), ["mse", "sparse_categorical_crossentropy"])
    images, boxes, colours = make_data(2000, 0)
    model.fit(images / np.float32(255), [boxes, colours], epochs=epochs, batch_size=64, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "multi.keras")
    calibration, _, _ = make_data(200, 1)
    evaluation, eval_boxes, eval_colours = make_data(200, 2)
    np.savez(out / "calibration.npz", image=calibration)
    np.savez(out / "eval.npz", image=evaluation, y_colour=eval_colours)
    (out / "labels.txt").write_text("\n".join(COLOURS) + "\n")
    predicted = model.predict(evaluation / np.float32(255), verbose=0)
    return {
        "colour_accuracy": float((predicted[1].argmax(axis=1) == eval_colours).mean()),
        "box_mean_abs_error_px": float(np.abs(predicted[0][:, :4] - eval_boxes[:, :4]).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    summary = build(args.out, args.epochs)
    print(f"wrote {args.out}: colour accuracy {summary['colour_accuracy']:.1%}, box error {summary['box_mean_abs_error_px']:.2f} px")


if __name__ == "__main__":
    main()
