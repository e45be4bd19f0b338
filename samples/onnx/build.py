"""Build the ONNX sample: a small NCHW CNN classifier made with onnx.helper (no PyTorch, no download)
that tells four synthetic patterns apart (horizontal, vertical and diagonal stripes, checkerboards).
Its convolutions are random; its last layer is fitted by least squares on the patterns, so it answers
as decisively as a trained model (about 95 % on held-out patterns).

Writes into samples/onnx/build/ (or --out):
  patterns.onnx      the model: input "images" (1, 3, 32, 32) in [0, 1], output "probs" (1, 4)
  calibration.npz    200 patterns as uint8 pixels in NCHW (x), as a PyTorch user holds images
  eval.npz           120 held-out patterns, uint8 NCHW (x) and their classes (y)
  images/            one PNG per class, what `edgekit run` is shown on

Usage: python samples/onnx/build.py [--out DIR]
Then:  edgekit convert samples/onnx/build/patterns.onnx -t x86_64 -q int8 \\
           --calibration samples/onnx/build/calibration.npz --eval-data samples/onnx/build/eval.npz \\
           --labels samples/onnx/labels.txt
       edgekit run bundles/patterns-x86_64 samples/onnx/build/images
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLASSES = 4


def models_module():
    spec = importlib.util.spec_from_file_location("onnx_sample_models", HERE / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(out: Path) -> Path:
    from PIL import Image

    models = models_module()
    x, y = models.patterns(440, classes=CLASSES, seed=0)
    fit, calibration, held_out = slice(0, 120), slice(120, 320), slice(320, 440)
    model = models.fit_head(models.classifier(CLASSES), x[fit].astype(np.float32) / 255, y[fit], CLASSES)
    out.mkdir(parents=True, exist_ok=True)
    path = models.save(model, out / "patterns.onnx")
    np.savez_compressed(out / "calibration.npz", x=x[calibration])
    np.savez_compressed(out / "eval.npz", x=x[held_out], y=y[held_out])
    labels = (HERE / "labels.txt").read_text().split()
    (out / "images").mkdir(exist_ok=True)
    for index in range(CLASSES):
        pixels = x[held_out][y[held_out] == index][0]
        Image.fromarray(pixels.transpose(1, 2, 0)).save(out / "images" / f"{labels[index]}.png")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "build")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
