"""`run`: answers, latency report, budget verdicts, and no TensorFlow on the device path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.runtime.session import run

LATENCY_KEYS = {"p50", "p90", "p99", "mean", "min", "max"}


def test_report_has_answers_and_latency(digits_bundles, digits):
    report = run(digits_bundles["bundles"]["int8"], [digits["images"]], repeat=20, warmup=2, top_k=3)
    data = report.to_dict()
    assert data["runtime"] == "ai-edge-litert" and data["threads"] == 2 and data["emulated"] is False
    assert LATENCY_KEYS <= set(data["latency_ms"]) and LATENCY_KEYS <= set(data["end_to_end_ms"])
    assert (
        data["latency_ms"]["min"] <= data["latency_ms"]["p50"] <= data["latency_ms"]["p99"] <= data["latency_ms"]["max"]
    )
    assert data["load_ms"] > 0 and data["budget_ms"] == 10.0
    assert len(data["results"]) == 10
    for result in data["results"]:
        digit = result["input"].rsplit("digit-", 1)[1][0]
        assert len(result["top_k"]) == 3
        assert result["top_k"][0]["label"] == digit  # the sample images are classified right
        scores = [t["score"] for t in result["top_k"]]
        assert scores == sorted(scores, reverse=True) and 0 <= scores[0] <= 1


def test_no_inputs_runs_on_zeros(digits_bundles):
    report = run(digits_bundles["bundles"]["float32"], repeat=5, warmup=0)
    assert [r.input for r in report.results] == ["<zeros>"]
    assert report.latency_ms.count == 5 and report.end_to_end_ms.count == 5


def test_budget_verdicts(digits_bundles, monkeypatch):
    bundle = digits_bundles["bundles"]["int8"]
    tight = run(bundle, repeat=5, warmup=0, budget_ms=1e-6)
    assert tight.budget_ms == 1e-6 and not tight.within_budget and tight.over_budget
    loose = run(bundle, repeat=5, warmup=0, budget_ms=1e6)
    assert loose.within_budget and not loose.over_budget
    monkeypatch.setenv("EDGEKIT_EMULATED", "1")
    emulated = run(bundle, repeat=5, warmup=0, budget_ms=1e-6)
    assert emulated.emulated and not emulated.within_budget and not emulated.over_budget
    assert emulated.to_dict()["budget_enforced"] is False


def test_archive_bundle_runs_like_the_folder(digits_bundles, digits):
    folder = digits_bundles["bundles"]["int8"]
    archive = folder.with_name(folder.name + ".tar.gz")
    a = run(folder, [digits["images"]], repeat=1, warmup=0)
    b = run(archive, [digits["images"]], repeat=1, warmup=0)
    assert [r.top_k for r in a.results] == [r.top_k for r in b.results]


def test_npy_and_image_give_the_same_answer(digits_bundles, digits, tmp_path):
    from PIL import Image

    image = digits["images"] / "digit-7.png"
    np.save(tmp_path / "seven.npy", np.asarray(Image.open(image))[..., None])
    report = run(digits_bundles["bundles"]["int8"], [image, tmp_path / "seven.npy"], repeat=1, warmup=0)
    assert report.results[0].top_k == report.results[1].top_k


NO_TF = """
import json, sys
from edgekit.cli import main
sys.argv = ["edgekit", "run", sys.argv[1], sys.argv[2], "--json", "--repeat", "3"]
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(json.dumps({"code": code, "heavy": heavy[:5]}), file=sys.stderr)
"""


def test_run_never_imports_tensorflow(digits_bundles, digits):
    image = digits["images"] / "digit-1.png"
    result = subprocess.run(
        [sys.executable, "-c", NO_TF, str(digits_bundles["bundles"]["int8"]), str(image)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    status = json.loads(result.stderr.strip().splitlines()[-1])
    assert status["code"] in (0, None), result.stderr
    assert status["heavy"] == []
    assert json.loads(result.stdout)["results"][0]["top_k"][0]["label"] == "1"


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_override(digits_bundles, threads):
    assert run(digits_bundles["bundles"]["int8"], threads=threads, repeat=1, warmup=0).threads == threads
