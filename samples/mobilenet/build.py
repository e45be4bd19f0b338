"""Build a Keras MobileNetV2 at 224x224 as a realistic latency workload, with no download.

The weights are random (`weights=None`): fine for latency, meaningless for accuracy. Calibration
inputs are real photographs: random 224x224 crops of the two images scikit-learn ships
(`load_sample_images`), so int8 calibration sees natural image statistics.

Writes into samples/mobilenet/build/ (or --out):
  mobilenet_v2.keras   the model (input 224x224x3, MobileNet preprocessing: (pixel - 127.5) / 127.5)
  calibration.npz      uint8 pixel crops (x), for --calibration
  images/              a few 224x224 JPEG crops to run on

Usage: python samples/mobilenet/build.py [--out DIR] [--samples N]
Then:  edgekit convert samples/mobilenet/build/mobilenet_v2.keras --mean 127.5 --std 127.5 \
           --calibration samples/mobilenet/build/calibration.npz -t x86_64
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
SIZE = 224
SEED = 0
MEAN = 127.5
STD = 127.5


def photo_crops(count: int, seed: int = SEED) -> np.ndarray:
    """`count` random SIZExSIZE uint8 RGB crops (random scale and flip) of scikit-learn's sample photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    crops = np.empty((count, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(count):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        side = int(rng.integers(SIZE // 2, min(height, width)))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((SIZE, SIZE), Image.BILINEAR)
        array = np.asarray(crop)
        crops[i] = array[:, ::-1] if rng.random() < 0.5 else array
    return crops


def build(out: Path, samples: int = 64) -> Path:
    from edgekit.conversion.quiet import import_keras

    keras = import_keras()  # quietly: TensorFlow logs to the terminal from C++ at import

    keras.utils.set_random_seed(SEED)
    model = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), weights=None, classes=1000)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mobilenet_v2.keras"
    model.save(path)
    crops = photo_crops(samples)
    np.savez_compressed(out / "calibration.npz", x=crops)
    from PIL import Image

    (out / "images").mkdir(exist_ok=True)
    for i, crop in enumerate(photo_crops(4, seed=SEED + 1)):
        Image.fromarray(crop).save(out / "images" / f"crop-{i}.jpg", quality=90)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    parser.add_argument("--samples", type=int, default=64, help="calibration crops to write")
    args = parser.parse_args(argv)
    path = build(args.out, args.samples)
    print(f"mobilenet_v2: {path} (random weights; for latency only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
