"""Tasks on the device (detect and segment reach their decoders with the right arguments) and bundles
written by edgekit 0.1 (schema 1) running as before.

The decoders (edgekit.runtime.detect, draw, masks) have their own tests; here they are stand-ins with
the same signatures, so these tests check what `run` hands them and what it does with their answers."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from edgekit.runtime.inspect_model import inspect
from edgekit.runtime.session import run
from tests.conftest import cli_json, edgekit_cli
from tests.runtime.multi_bundles import rewrite_manifest, sample_files

ONCE = {"repeat": 1, "warmup": 0}


@dataclass(frozen=True)
class Detection:
    label: str | None
    index: int
    score: float
    box: tuple[float, float, float, float]

    def to_dict(self) -> dict:
        return {"label": self.label, "index": self.index, "score": self.score, "box": list(self.box)}


@pytest.fixture
def decoders(monkeypatch) -> list:
    """Stand-ins for edgekit.runtime.detect/draw/masks; every call is recorded."""
    calls: list = []

    def detections(outputs, manifest, original_size, conf, iou, max_detections, labels=None):
        calls.append(("detections", outputs, manifest, original_size, conf, iou, max_detections, labels))
        width, height = original_size
        return [Detection("thing", 1, 0.9, (0.0, 0.0, width / 2, height / 2))]

    def draw_boxes(image_path, found, out_path):
        calls.append(("draw_boxes", Path(image_path), list(found), Path(out_path)))
        Path(out_path).write_bytes(b"png")

    def save_mask(output, original_size, out_path):
        calls.append(("save_mask", output, original_size, Path(out_path)))
        Path(out_path).write_bytes(b"png")

    for name, function in (("detect", detections), ("draw", draw_boxes), ("masks", save_mask)):
        module = ModuleType(f"edgekit.runtime.{name}")
        setattr(module, function.__name__, function)
        monkeypatch.setitem(sys.modules, module.__name__, module)
    return calls


def with_task(source: Path, folder: Path, task: str, postprocess: dict | None = None) -> Path:
    shutil.copytree(source, folder)

    def change(data):
        data["task"] = task
        data["postprocess"] = postprocess or {}
        return data

    rewrite_manifest(folder, change)
    return folder


def test_detect_hands_every_output_and_the_images_size_to_the_decoder(multi_bundles, decoders, tmp_path):
    bundle = with_task(multi_bundles["two_heads"]["int8"], tmp_path / "det", "detect", {"format": "ssd"})
    image = tmp_path / "wide.png"
    Image.new("L", (40, 30), 128).save(image)
    out = tmp_path / "out"
    report = run(bundle, [image], conf=0.5, iou=0.3, max_detections=7, save_outputs=out, **ONCE)
    name, outputs, manifest, size, conf, iou, limit, labels = decoders[0]
    assert name == "detections" and manifest.task == "detect" and manifest.postprocess == {"format": "ssd"}
    assert [y.shape for y in outputs] == [tuple(s.shape) for s in manifest.outputs]
    assert all(y.dtype == np.float32 for y in outputs)  # dequantized
    assert size == (40, 30) and (conf, iou, limit) == (0.5, 0.3, 7) and labels is None
    result = report.results[0].to_dict()
    assert result["detections"] == [{"label": "thing", "index": 1, "score": 0.9, "box": [0.0, 0.0, 20.0, 15.0]}]
    drawn = [c for c in decoders if c[0] == "draw_boxes"]
    assert drawn == [("draw_boxes", image, list(report.results[0].detections), out / "wide.boxes.png")]
    assert sorted(p.name for p in out.iterdir()) == ["wide.box.npy", "wide.boxes.png", "wide.class.npy"]


def test_detect_with_the_real_decoder(multi_bundles, tmp_path):
    """Once edgekit.runtime.detect is there: boxes in the image's pixels, NMS applied, the drawing written."""
    pytest.importorskip("edgekit.runtime.detect")
    image = tmp_path / "scene.png"
    Image.new("RGB", (64, 48), (0, 0, 0)).save(image)
    out = tmp_path / "out"
    report = run(multi_bundles["yolo"]["float32"], [image], save_outputs=out, **ONCE)
    found = report.results[0].to_dict()["detections"]
    assert [(d["label"], d["index"]) for d in found] == [("square", 0), ("circle", 1)]
    np.testing.assert_allclose(found[0]["box"], [24, 18, 40, 30], atol=1e-3)  # x by 2, y by 1.5
    assert found[0]["score"] == pytest.approx(0.9) and found[1]["score"] == pytest.approx(0.7)
    assert sorted(p.name for p in out.iterdir()) == ["scene.boxes.png", "scene.output0.npy"]
    assert Image.open(out / "scene.boxes.png").size == (64, 48)


def test_detect_on_an_array_uses_the_inputs_own_size_and_draws_nothing(multi_bundles, decoders, tmp_path):
    bundle = with_task(multi_bundles["two_heads"]["float32"], tmp_path / "det", "detect")
    run(bundle, [{"image": np.zeros((12, 12, 1), np.uint8)}], save_outputs=tmp_path / "out", **ONCE)
    assert decoders[0][3] == (12, 12)
    assert not any(c[0] == "draw_boxes" for c in decoders)


def test_detect_settings_reach_run_from_the_command_line_defaults(multi_bundles, decoders, tmp_path):
    from edgekit import defaults

    bundle = with_task(multi_bundles["two_heads"]["float32"], tmp_path / "det", "detect")
    run(bundle, **ONCE)
    assert decoders[0][4:7] == (defaults.CONF, defaults.IOU, defaults.MAX_DETECTIONS) == (0.25, 0.45, 100)


def test_segment_saves_the_mask_at_the_images_size(multi_bundles, decoders, tmp_path):
    bundle = with_task(multi_bundles["two_inputs"]["float32"], tmp_path / "seg", "segment")
    files = sample_files(tmp_path / "in")
    out = tmp_path / "out"
    run(bundle, [{"image": files["photo-0"], "side": files["side"]}], save_outputs=out, **ONCE)
    ((name, output, size, path),) = [c for c in decoders if c[0] == "save_mask"]
    assert output.shape == (1, 16, 16, 1) and size == (30, 20) and path == out / "photo-0.mask.png"
    assert not any(c[0] == "detections" for c in decoders)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--conf", "1.5"], "--conf"),
        (["--iou", "-0.1"], "--iou"),
        (["--max-detections", "0"], "--max-detections"),
    ],
)
def test_detection_options_are_checked(multi_bundles, args, message):
    result = edgekit_cli("run", multi_bundles["two_heads"]["float32"], *args)
    assert result.returncode == 2 and message in result.stderr


# --- schema 1 (edgekit 0.1) ---------------------------------------------------------------------------


def as_schema_1(data: dict) -> dict:
    """A schema-2 manifest written back the way edgekit 0.1 wrote it."""
    data["schema"] = 1
    data["task"] = {"classify": "classification", "raw": "generic"}[data["task"]]
    data["preprocess"] = data["inputs"][0].pop("preprocess", None)
    for output in data["outputs"]:
        output.pop("labels", None)
    data.pop("postprocess", None)
    return data


def test_a_schema_1_bundle_runs_with_identical_answers(digits_bundles, digits, tmp_path):
    fresh = digits_bundles["bundles"]["int8"]
    old = tmp_path / "old"
    shutil.copytree(fresh, old)
    rewrite_manifest(old, as_schema_1)
    data = json.loads((old / "edgekit.json").read_text())
    assert data["schema"] == 1 and "preprocess" not in data["inputs"][0] and data["task"] == "classification"
    now, before = (run(b, [digits["images"]], top_k=3, **ONCE) for b in (fresh, old))
    assert [r.to_dict() for r in now.results] == [r.to_dict() for r in before.results]
    assert before.results[0].top_k[0].label == before.results[0].input.rsplit("digit-", 1)[1][0]
    assert inspect(old).schema == 1 and inspect(fresh).schema == 2
    code, info = cli_json("inspect", old)
    assert code == 0 and info["schema"] == 1 and info["task"] == "classify"
    assert info["inputs"][0]["preprocess"]["color"] == "L"  # schema 1's top-level preprocess, read per input
    table = edgekit_cli("inspect", old)
    assert "manifest: schema 1" in table.stdout


def test_a_schema_1_generic_bundle_reports_its_outputs(multi_bundles, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(multi_bundles["two_heads"]["float32"], old)
    rewrite_manifest(old, as_schema_1)
    listed = [o["name"] for o in json.loads((old / "edgekit.json").read_text())["outputs"]]
    result = run(old, **ONCE).results[0].to_dict()
    assert sorted(listed) == ["box", "class"] and [o["name"] for o in result["outputs"]] == listed
