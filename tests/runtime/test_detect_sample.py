"""The shapes detector sample end to end: trained from scratch, converted (float32 and int8), run through
a Session, decoded as a detector, compared with the true boxes of the images it ships and with each other."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, _sample_files, load_script

SAMPLE = ROOT / "samples" / "shapes"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    before = _sample_files(SAMPLE)
    train = load_script(SAMPLE / "train.py", "shapes_train")
    out = tmp_path_factory.mktemp("shapes")
    summary = train.train(out, quiet=True, samples=out)
    assert _sample_files(SAMPLE) == before, "training the shapes fixture changed files under samples/shapes"
    return {"dir": out, "summary": summary}


@pytest.fixture(scope="module")
def shapes_bundles(shapes, tmp_path_factory) -> dict[str, Path]:
    from edgekit.conversion.pipeline import convert

    out = tmp_path_factory.mktemp("shapes-bundles")
    bundles = {}
    for mode in ("float32", "int8"):
        report = convert(
            shapes["dir"] / "shapes.keras",
            targets=["x86_64"],
            quantization=mode,
            calibration=shapes["dir"] / "calibration.npz",
            labels=SAMPLE / "labels.txt",
            name=f"shapes-{mode}",
            out=out,
            allow_degraded=True,  # the classifier checks do not fit a detector's output
        )
        bundles[mode] = Path(report.bundles[0].path)
    return bundles


def truth() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sys.path.insert(0, str(SAMPLE))
    from scenes import CLASSES

    data = json.loads((SAMPLE / "images" / "boxes.json").read_text())
    return {
        name: (np.array([o["box"] for o in objects]), np.array([CLASSES.index(o["label"]) for o in objects]))
        for name, objects in data.items()
    }


def detect_images(bundle: Path, out: Path | None = None) -> dict[str, list]:
    from edgekit.bundle import open_bundle
    from edgekit.runtime.detect import detections
    from edgekit.runtime.draw import draw_boxes, image_size
    from edgekit.runtime.session import Session

    found = {}
    with open_bundle(bundle) as opened:
        session = Session(opened, threads=1)
        # Until conversion records it, the manifest's task is set here.
        manifest = dataclasses.replace(session.manifest, task="detect")
        for path in sorted((SAMPLE / "images").glob("*.png")):
            outputs = session.predict(session.prepare(path))
            found[path.name] = detections(outputs, manifest, image_size(path), labels=session.labels)
            if out is not None:
                draw_boxes(path, found[path.name], out / f"{path.stem}.boxes.png")
    return found


def test_sample_trains_quickly_into_a_working_detector(shapes):
    summary = shapes["summary"]
    assert summary["precision"] >= 0.8 and summary["recall"] >= 0.7, summary
    with np.load(shapes["dir"] / "eval.npz") as data:
        assert data["x"].shape == (200, 96, 96, 3) and data["x"].dtype == np.uint8
        assert data["boxes"].shape == (200, 3, 4) and data["classes"].shape == (200, 3)


def test_shipped_images_are_small_and_labelled():
    images = sorted((SAMPLE / "images").glob("*.png"))
    assert len(images) >= 4 and all(p.stat().st_size < 10_000 for p in images)
    assert set(truth()) == {p.name for p in images}
    assert (SAMPLE / "labels.txt").read_text().split() == ["square", "circle", "triangle"]


def test_converted_detector_finds_the_shapes_float_and_int8_agree(shapes_bundles, tmp_path):
    sys.path.insert(0, str(SAMPLE))
    from match import iou, match_boxes

    found = {
        mode: detect_images(bundle, tmp_path if mode == "int8" else None) for mode, bundle in shapes_bundles.items()
    }
    expected = truth()
    objects = sum(len(classes) for _, classes in expected.values())
    recall = {
        mode: sum(match_boxes(found[mode][name], *expected[name]) for name in expected) / objects for mode in found
    }
    assert recall["float32"] >= 0.6, recall
    # The share of float boxes an int8 box matches (IoU >= 0.5, same class).
    float_boxes = [(name, d) for name in expected for d in found["float32"][name]]
    agreed = sum(
        any(q.index == d.index and iou(q.box, d.box) >= 0.5 for q in found["int8"][name]) for name, d in float_boxes
    )
    assert float_boxes and agreed / len(float_boxes) >= 0.8, (agreed, len(float_boxes))
    assert all(d.label in ("square", "circle", "triangle") for ds in found["int8"].values() for d in ds)
    assert sorted(p.name for p in tmp_path.glob("*.boxes.png")) == [
        f"{Path(n).stem}.boxes.png" for n in sorted(expected)
    ]
