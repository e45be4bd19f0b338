"""5. Preprocessing cost, file → MobileNetV2 224×224 int8 input tensor, for JPEG and PNG.

Images (written once to build/bench/images from scikit-learn's bundled sample photo, no download):
a 224×224 crop (JPEG q90 and PNG: no resize needed) and a 1920×1280 camera-sized frame (JPEG q90 and
PNG: decode and downscale dominate). Timed, alternating per round, in one process:
  edgekit     Session.prepare(): what `edgekit run` does per input (decode with JPEG draft mode,
              EXIF orientation, colour, one resize, uint8 → float32 normalize, quantize)
  no-draft    the same steps without Pillow's JPEG draft mode (full-size decode)
  naive       a common hand-written version: full decode, unconditional .convert("RGB"), resize,
              normalize in float64 (`(np.asarray(img) - 127.5) / 127.5`), quantize, cast
Each figure is the median over rounds of the per-round median; the MobileNetV2 int8 invoke p50
(`edgekit bench`, 1 thread, same run) puts them in proportion.

Usage: python benchmarks/preprocess_cost.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import BUILD, Results, alternate, bundle, ms, row  # noqa: E402

from edgekit.native_output import quiet_native_output  # noqa: E402

IMAGES = BUILD / "images"
SIZES = {"224x224": (224, 224), "1920x1280": (1920, 1280)}
CALLS_PER_ROUND = {"224x224": 40, "1920x1280": 6}


def write_images() -> dict[str, Path]:
    """The four test images, from scikit-learn's china.jpg (427×640), written once."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    IMAGES.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray(load_sample_image("china.jpg"))
    paths = {}
    for label, size in SIZES.items():
        if size == (224, 224):
            side = min(photo.size)
            image = photo.crop((0, 0, side, side)).resize(size, Image.BICUBIC)
        else:
            image = photo.resize(size, Image.BICUBIC)
        for fmt, suffix in (("JPEG", "jpg"), ("PNG", "png")):
            path = IMAGES / f"photo-{label}.{suffix}"
            if not path.exists():
                image.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            paths[f"{label} {fmt}"] = path
    return paths


def without_draft(spec, tensor) -> Callable[[Path], np.ndarray]:
    """edgekit's steps minus the JPEG draft-mode request."""
    from PIL import Image, ImageOps

    from edgekit.runtime.preprocess import normalize, quantize

    height, width = spec.size

    def prepare(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode != spec.color:  # as edgekit: no conversion (a full copy) when already right
                image = image.convert(spec.color)
            pixels = np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.uint8)
        return quantize(normalize(pixels, spec)[None], tensor)

    return prepare


def naive(tensor) -> Callable[[Path], np.ndarray]:
    """Full decode, float64 arithmetic: what tutorials often show."""
    from PIL import Image

    def prepare(path: Path) -> np.ndarray:
        image = Image.open(path).convert("RGB").resize((224, 224))
        x = (np.asarray(image) - 127.5) / 127.5  # float64
        q = np.round(x / tensor.scale) + tensor.zero_point
        return np.clip(q, -128, 127).astype(np.int8)[None]

    return prepare


def step_costs(path: Path, calls: int) -> dict[str, float]:
    """Where the time goes for one image: decode (full and draft) and resize (from each)."""
    from PIL import Image

    def decode(draft: bool):
        image = Image.open(path)
        if draft:
            image.draft("RGB", (224, 224))
        image.load()
        return image

    full, drafted = decode(False), decode(True)
    return {
        "decode_full_ms": median_ms(lambda _: decode(False), path, calls),
        "decode_draft_ms": median_ms(lambda _: decode(True), path, calls),
        "draft_size": list(drafted.size),
        "resize_from_full_ms": median_ms(lambda _: full.resize((224, 224), Image.BILINEAR), path, calls),
        "resize_from_draft_ms": median_ms(lambda _: drafted.resize((224, 224), Image.BILINEAR), path, calls),
        # What an unconditional .convert("RGB") costs when the image is RGB already (a full copy).
        "convert_same_mode_ms": median_ms(lambda _: full.convert(full.mode), path, calls),
    }


def median_ms(prepare: Callable[[Path], np.ndarray], path: Path, calls: int) -> float:
    timings = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        prepare(path)
        timings[i] = time.perf_counter_ns() - start
    return float(np.median(timings)) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    from edgekit.bundle import open_bundle
    from edgekit.runtime.benchmark import bench
    from edgekit.runtime.session import Session

    images = write_images()
    path = bundle("mobilenet_v2-int8")
    results = Results("preprocess_cost")
    with open_bundle(path) as opened, quiet_native_output():
        session = Session(opened, threads=1)
        spec, tensor = opened.manifest.preprocess, session.input_spec
        variants = {"edgekit": session.prepare, "no-draft": without_draft(spec, tensor), "naive": naive(tensor)}
        # All three must produce the model's input tensor.
        for image_path in images.values():
            for prepare in variants.values():
                out = prepare(image_path)
                assert out.shape == tensor.shape and out.dtype == np.dtype(tensor.dtype), (out.shape, out.dtype)
        timings = {(image, name): [] for image in images for name in variants}
        invoke_p50 = []
        for index, _ in alternate(args.rounds):
            names = list(variants)
            names = names[index % 3 :] + names[: index % 3]
            for image, image_path in images.items():
                calls = CALLS_PER_ROUND[image.split()[0]]
                for name in names:
                    timings[(image, name)].append(median_ms(variants[name], image_path, calls))
            invoke_p50.append(bench([path], threads=[1], warmup=5, repeat=20).rows[0].latency_ms.p50)
        steps = {
            image: step_costs(image_path, CALLS_PER_ROUND[image.split()[0]]) for image, image_path in images.items()
        }
    invoke = float(np.median(invoke_p50))
    for image in images:
        figures = {name: float(np.median(timings[(image, name)])) for name in variants}
        results.add(
            row(
                "5",
                f"preprocess {image} → 224×224 int8 tensor (vs the invoke it feeds)",
                "mobilenet_v2-int8",
                1,
                ms(figures["edgekit"]),
                f"invoke {ms(invoke)}; no-draft {ms(figures['no-draft'])}; naive {ms(figures['naive'])}",
                figures["edgekit"] / invoke,
                "report",
                None,
                edgekit_ms=figures["edgekit"],
                no_draft_ms=figures["no-draft"],
                naive_ms=figures["naive"],
                invoke_p50_ms=invoke,
                naive_over_edgekit=figures["naive"] / figures["edgekit"],
                no_draft_over_edgekit=figures["no-draft"] / figures["edgekit"],
                bytes=images[image].stat().st_size,
                steps=steps[image],
                rounds=args.rounds,
            )
        )
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
