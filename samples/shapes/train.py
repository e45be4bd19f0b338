"""Train the shapes sample: a tiny YOLO-style detector for squares, circles and triangles drawn on noise
(generated here, seeded, no download), in well under a minute on two CPU cores.

The model (Keras 3) takes a 96x96 RGB image (pixels / 255) and gives ONE output `output0` of shape
[1, 7, 144] in the Ultralytics/YOLOv8 export convention: for each of the 12x12 grid cells a box as
centre/size (cx, cy, w, h) then the three class scores (sigmoid). Boxes are normalized to 0-1 by default
(as Ultralytics' TFLite export does, so that boxes and scores share one int8 scale); `--coordinates
pixels` gives boxes in input pixels instead (the head int8 quantizes badly: see issue 11's keep-float).

Writes into samples/shapes/build/ (or --out):
  shapes.keras      the trained model (no custom layers: loads anywhere)
  calibration.npz   200 training scenes as uint8 pixels (x), for int8 calibration
  eval.npz          held-out scenes: x (uint8 [N, 96, 96, 3]), boxes ([N, 3, 4] x1 y1 x2 y2 in pixels,
                    -1 padded), classes ([N, 3], -1 padded)
  train.json        training time and detection quality (precision/recall at IoU 0.5) on eval.npz
and, into --samples DIR, images/ (scenes of several sizes the demo runs on; their true boxes in
images/boxes.json) and labels.txt. --samples defaults to samples/shapes/ itself only when --out is
samples/shapes/build/; a build anywhere else leaves the sample's tracked files alone.

Usage: python samples/shapes/train.py [--out DIR] [--samples DIR] [--epochs N] [--coordinates normalized|pixels]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD = HERE / "build"
# This checkout's edgekit (decoding the detections) and the sample's own modules.
for folder in (str(ROOT), str(HERE)):
    if folder not in sys.path:
        sys.path.insert(0, folder)
from scenes import CLASSES, SIZE, scene, scenes  # noqa: E402

STRIDE = 8
GRID = SIZE // STRIDE
SEED = 0
TRAIN_SCENES = 2000
EVAL_SCENES = 200
BATCH = 32
# The demo images: (width, height) of each; not all 96x96, so the run undoes real resizes.
DEMO_SIZES = ((96, 96), (192, 192), (160, 120), (128, 96), (96, 144), (200, 150))


def build_model(coordinates: str = "normalized"):
    """The detector, from standard layers only: a small strided CNN, a 1x1 head per grid cell, and the
    decoding to centre/size boxes done by fixed (non-trainable) Dense layers that add each cell's offset."""
    from edgekit.conversion.quiet import import_keras

    keras = import_keras()
    layers = keras.layers
    scale = 1.0 if coordinates == "normalized" else float(SIZE)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = inputs
    for index, (filters, strides) in enumerate(((12, 2), (24, 2), (32, 2), (48, 1), (48, 1))):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", activation="relu", name=f"conv{index + 1}")(x)
    raw = layers.Conv2D(4 + len(CLASSES), 1, name="head")(x)  # [B, 12, 12, 7]
    raw = layers.Permute((2, 1), name="channels_first")(layers.Reshape((GRID * GRID, 4 + len(CLASSES)))(raw))
    parts = []
    for axis, name in ((0, "cx"), (1, "cy")):
        offset = layers.Activation("sigmoid")(layers.Cropping1D((axis, 3 + len(CLASSES) - axis))(raw))
        parts.append(layers.Dense(GRID * GRID, trainable=False, name=name)(offset))
    size = layers.Activation("sigmoid")(layers.Cropping1D((2, len(CLASSES)))(raw))
    parts.append(layers.Rescaling(scale, name="wh")(size))
    parts.append(layers.Activation("sigmoid", name="scores")(layers.Cropping1D((4, 0))(raw)))
    outputs = layers.Concatenate(axis=1, name="output0")(parts)
    model = keras.Model(inputs, outputs, name="shapes")
    # A cell's centre offset is sigmoid*2 - 0.5 cells (YOLOv5's), so a cell can reach just past its edges.
    cells = np.arange(GRID * GRID)
    for name, position in (("cx", cells % GRID), ("cy", cells // GRID)):
        kernel = np.eye(GRID * GRID, dtype=np.float32) * (2 * STRIDE * scale / SIZE)
        bias = ((position - 0.5) * STRIDE * scale / SIZE).astype(np.float32)
        model.get_layer(name).set_weights([kernel, bias])
    head_kernel, head_bias = model.get_layer("head").get_weights()
    head_bias[4:] = -4.0  # start with low scores (a 2 % prior): most cells hold nothing
    model.get_layer("head").set_weights([head_kernel, head_bias])
    return model


def targets(boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Training targets [N, 8, 144]: normalized cx, cy, w, h, one-hot class, and 1 in each cell that
    answers for the object: the one holding its centre and, as YOLOv5 does, its two neighbours nearest
    the centre (a cell's offset reaches half a cell past its edges). Three answers per object train the
    head faster; NMS keeps one."""
    y = np.zeros((len(boxes), 5 + len(CLASSES), GRID * GRID), dtype=np.float32)
    for n in range(len(boxes)):
        for (x1, y1, x2, y2), c in zip(boxes[n], classes[n]):
            if c < 0:
                continue
            cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
            gx, gy = int(min(cx, GRID - 1)), int(min(cy, GRID - 1))
            nx = gx - 1 if cx - gx < 0.5 else gx + 1
            ny = gy - 1 if cy - gy < 0.5 else gy + 1
            for col, row in ((gx, gy), (nx, gy), (gx, ny)):
                if not (0 <= col < GRID and 0 <= row < GRID):
                    continue
                cell = row * GRID + col
                y[n, :4, cell] = np.array([x1 + x2, y1 + y2, 2 * (x2 - x1), 2 * (y2 - y1)]) / (2 * SIZE)
                y[n, 4:-1, cell] = 0
                y[n, 4 + c, cell] = 1
                y[n, -1, cell] = 1
    return y


def detection_loss(scale: float):
    from edgekit.conversion.quiet import import_keras

    ops = import_keras().ops

    def loss(y_true, y_pred):
        positive = y_true[:, -1, :]
        count = ops.maximum(ops.sum(positive), 1.0)
        box = ops.sum(ops.abs(y_true[:, :4, :] - y_pred[:, :4, :] / scale), axis=1)
        scores = ops.clip(y_pred[:, 4:, :], 1e-6, 1 - 1e-6)
        truth = y_true[:, 4:-1, :]
        bce = -(truth * ops.log(scores) + (1 - truth) * ops.log(1 - scores))
        return 10.0 * ops.sum(box * positive) / count + ops.sum(bce) / count

    return loss


def sample_folder(out: Path) -> Path | None:
    """The sample's own folder when building its own build folder (`make demo-detect`), else nowhere."""
    return HERE if Path(out).resolve() == BUILD else None


def train(
    out: Path, epochs: int = 20, quiet: bool = False, samples: Path | None = None, coordinates: str = "normalized"
) -> dict:
    """Train and write the sample into `out`; returns training time, quality and paths."""
    out = Path(out)
    samples = sample_folder(out) if samples is None else Path(samples)
    from edgekit.conversion.quiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(SEED)
    started, started_cpu = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(SEED)
    x_train, boxes_train, classes_train = scenes(rng, TRAIN_SCENES)
    x_eval, boxes_eval, classes_eval = scenes(rng, EVAL_SCENES)
    scale = 1.0 if coordinates == "normalized" else float(SIZE)
    model = build_model(coordinates)
    steps = epochs * -(-TRAIN_SCENES // BATCH)
    schedule = keras.optimizers.schedules.CosineDecay(5e-3, steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=detection_loss(scale))
    progress = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: (
            (epoch + 1) % 5 == 0 and print(f"shapes: epoch {epoch + 1}/{epochs}, loss {logs['loss']:.4f}", flush=True)
        )
    )
    model.fit(
        x_train.astype(np.float32) / 255.0,
        targets(boxes_train, classes_train),
        epochs=epochs,
        batch_size=BATCH,
        verbose=0,
        shuffle=True,
        callbacks=[] if quiet else [progress],
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    predictions = model.predict(x_eval.astype(np.float32) / 255.0, verbose=0, batch_size=64)
    quality = evaluate(predictions, boxes_eval, classes_eval, coordinates)

    out.mkdir(parents=True, exist_ok=True)
    clean = build_model(coordinates)  # the same weights without the training loss: loads without this file
    clean.set_weights(model.get_weights())
    clean.save(out / "shapes.keras")
    np.savez_compressed(out / "calibration.npz", x=x_train[:200])
    np.savez_compressed(out / "eval.npz", x=x_eval, boxes=boxes_eval, classes=classes_eval)
    if samples is not None:
        write_samples(samples)
    summary = {
        "train_seconds": round(seconds, 1),  # wall clock: scenes generated, model trained
        "train_cpu_seconds": round(cpu_seconds, 1),  # CPU time of all threads over the same span
        "epochs": epochs,
        "train_scenes": TRAIN_SCENES,
        "eval_scenes": EVAL_SCENES,
        "coordinates": coordinates,
        **quality,
        "model": str(out / "shapes.keras"),
    }
    (out / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate(predictions: np.ndarray, boxes: np.ndarray, classes: np.ndarray, coordinates: str) -> dict:
    """Precision and recall at IoU 0.5 (same class) of the decoded detections, over a batch of scenes."""
    from match import match_boxes, scene_manifest

    from edgekit.runtime.detect import detections

    manifest = scene_manifest(coordinates)
    matched = found_total = truth_total = 0
    for prediction, truth_boxes, truth_classes in zip(predictions, boxes, classes):
        found = detections([prediction[None]], manifest, (SIZE, SIZE))
        keep = truth_classes >= 0
        hits = match_boxes(found, truth_boxes[keep], truth_classes[keep])
        matched += hits
        found_total += len(found)
        truth_total += int(keep.sum())
    return {
        "precision": round(matched / max(found_total, 1), 4),
        "recall": round(matched / max(truth_total, 1), 4),
        "objects": truth_total,
    }


def write_samples(folder: Path) -> None:
    """The demo scenes (PNG, a few KB each: the noise is coarse) with their true boxes, and labels.txt."""
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED + 1)
    truth = {}
    for index, (width, height) in enumerate(DEMO_SIZES):
        pixels, boxes, classes = scene(rng, width, height)
        name = f"shapes-{index + 1}.png"
        Image.fromarray(pixels).save(images / name, optimize=True)
        truth[name] = [
            {"label": CLASSES[c], "box": [round(float(v), 1) for v in b]} for b, c in zip(boxes, classes) if c >= 0
        ]
    (images / "boxes.json").write_text(json.dumps(truth, indent=1) + "\n")
    (folder / "labels.txt").write_text("\n".join(CLASSES) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=BUILD)
    parser.add_argument("--samples", type=Path, default=None, help="where images/ and labels.txt go")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--coordinates", choices=("normalized", "pixels"), default="normalized")
    args = parser.parse_args(argv)
    summary = train(args.out, args.epochs, samples=args.samples, coordinates=args.coordinates)
    print(
        f"shapes: trained in {summary['train_seconds']} s ({summary['train_cpu_seconds']} s of CPU); "
        f"precision {summary['precision']:.3f}, "
        f"recall {summary['recall']:.3f} at IoU 0.5 on {summary['objects']} objects -> {summary['model']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
