"""The ONNX sample builds offline into any folder and answers as its docstring says."""

from __future__ import annotations

import numpy as np

from tests.conftest import ROOT, load_script


def test_sample_builds_and_separates_its_patterns(tmp_path):
    import onnxruntime

    build = load_script(ROOT / "samples" / "onnx" / "build.py", "onnx_sample_build")
    path = build.build(tmp_path)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "checkerboard.png", "diagonal.png", "horizontal.png", "vertical.png",
    ]  # fmt: skip
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with np.load(tmp_path / "eval.npz") as data:
        x, y = data["x"].astype(np.float32) / 255, data["y"]
    scores = np.concatenate([session.run(None, {"images": sample[None]})[0] for sample in x])
    assert np.mean(scores.argmax(1) == y) > 0.85
    assert path.stat().st_size < 200_000
