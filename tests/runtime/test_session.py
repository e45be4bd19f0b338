"""`run`: answers, latency report, budget verdicts, and no TensorFlow on the device path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from edgekit.bundle import open_bundle
from edgekit.runtime import timing
from edgekit.runtime.session import Session, run
from tests.conftest import ROOT

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


@pytest.fixture
def microsecond_invokes(monkeypatch) -> None:
    """The timing loop's clock ticks 1 µs per read: every timed invoke lasts exactly 0.001 ms."""
    ticks = iter(range(0, 10**12, 1000))
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter_ns=lambda: next(ticks)))


def test_budget_verdicts(digits_bundles, microsecond_invokes, monkeypatch):
    bundle = digits_bundles["bundles"]["int8"]
    exact = run(bundle, repeat=5, warmup=0, budget_ms=0.001)
    assert exact.latency_ms.p99 == 0.001
    assert exact.within_budget and not exact.over_budget  # a p99 equal to the budget keeps it
    tight = run(bundle, repeat=5, warmup=0, budget_ms=0.0009)
    assert not tight.within_budget and tight.over_budget
    monkeypatch.setenv("EDGEKIT_EMULATED", "1")
    emulated = run(bundle, repeat=5, warmup=0, budget_ms=0.0009)
    assert emulated.emulated and not emulated.within_budget and not emulated.over_budget
    assert emulated.to_dict()["budget_enforced"] is False


def test_budget_defaults_to_the_bundles_target(digits_bundles):
    bundle = digits_bundles["bundles"]["int8"]
    target_budget = json.loads((bundle / "edgekit.json").read_text())["target"]["budget_ms"]
    report = run(bundle, repeat=5, warmup=0)
    assert report.budget_ms == target_budget
    assert report.within_budget == (report.latency_ms.p99 <= target_budget)


def test_invoke_timings_come_from_the_timing_loop(digits_bundles, microsecond_invokes):
    report = run(digits_bundles["bundles"]["int8"], repeat=7, warmup=3)
    assert report.latency_ms.count == 7
    assert report.latency_ms.min == report.latency_ms.max == 0.001


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
sys.argv = ["edgekit", "run", sys.argv[1], sys.argv[2], "--json", "--repeat", "3", "--budget-ms", "1000000"]
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
    assert status["code"] in (0, None), result.stderr  # no machine misses a 1000 s budget
    assert status["heavy"] == []
    assert json.loads(result.stdout)["results"][0]["top_k"][0]["label"] == "1"


def live_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
@pytest.mark.parametrize("threads", [1, 3])
def test_threads_reach_the_interpreter(digits_bundles, digits, threads):
    """N threads: the caller plus N-1 workers of the runtime's pool, started with the interpreter.
    The x86_64 target says 2, so both counts differ from the bundle's own."""
    bundle = digits_bundles["bundles"]["int8"]
    with open_bundle(bundle) as opened:
        before = live_threads()
        session = Session(opened, threads=threads)
        assert live_threads() - before == threads - 1
        del session
    report = run(bundle, [digits["images"]], threads=threads, repeat=1, warmup=0)
    assert report.to_dict()["threads"] == threads
    for result in report.results:  # the same answers on any thread count
        assert result.top_k[0].label == result.input.rsplit("digit-", 1)[1][0]


IMPORTS_OF_A_RUN = """
import json, sys
from edgekit.runtime.session import run
run(sys.argv[1], sys.argv[2:], warmup=0, repeat=1)
print(json.dumps(sorted(sys.modules)))
"""


def test_run_imports_only_what_it_uses(digits_bundles, digits, tmp_path):
    """Start-up is paid on every `edgekit run` on a device: no image library for arrays, no
    package-metadata scan, none of numpy's extras, nothing from the other commands."""
    from PIL import Image

    array = tmp_path / "seven.npy"
    np.save(array, np.asarray(Image.open(digits["images"] / "digit-7.png"))[..., None])
    bundle = str(digits_bundles["bundles"]["int8"])
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF_A_RUN, bundle, str(array)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(result.stdout))
    unused = ("PIL", "importlib.metadata", "numpy.ma", "csv", "edgekit.cli", "edgekit.conversion")
    assert [m for m in unused if m in modules] == []
    assert not any(m.startswith(("tensorflow", "keras", "edgekit.runtime.bench")) for m in modules)
