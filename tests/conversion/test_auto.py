"""--quantize auto: every candidate mode per target, side by side; modes that fail the checks are dropped,
the fastest of the rest (timed on this machine with the target's threads) wins, a tie goes to the
smaller model, and each mode is converted once for all targets."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgekit.conversion import pipeline, quantize, selection
from edgekit.conversion.accuracy import Accuracy
from edgekit.conversion.selection import Trial, choose_mode
from edgekit.conversion.verify import Fidelity, Verdict
from edgekit.errors import CheckFailed
from edgekit.runtime.stats import LatencyStats
from edgekit.targets import get_target
from tests.conftest import cli_json

CANDIDATE_KEYS = {"mode", "bytes", "accuracy", "agreement", "p50_ms", "p99_ms", "threads", "passed", "chosen", "reason"}


def verdict(agreement: float, problems: tuple[str, ...] = (), accuracy: float | None = None) -> Verdict:
    fidelity = Fidelity(100, 0.1, 0.01, 0.999, agreement)
    return Verdict(fidelity, None if accuracy is None else Accuracy(0.95, accuracy, 100), problems)


def latency(p50: float) -> LatencyStats:
    return LatencyStats.from_ns(np.full(20, int(p50 * 1e6)))


def test_fastest_passing_mode_wins_and_a_tie_goes_to_the_smaller_model():
    target = get_target("x86_64")
    threads = selection.machine_threads(target)
    trials = {
        "float32": Trial("float32", 4000, verdict(1.0)),
        "dynamic": Trial("dynamic", 1000, verdict(1.0)),
        "float16": Trial("float16", 2000, verdict(1.0)),
        "int8": Trial("int8", 1100, verdict(0.5, ("top-1 agreement 0.500 < 0.9 (--min-agreement)",))),
        "int16x8": Trial("int16x8", None, None, "int16x8: refused at allocation"),
    }
    times = {"float32": 1.00, "dynamic": 1.04, "float16": 1.50, "int8": 0.50}
    latencies = {(mode, threads): latency(ms) for mode, ms in times.items()}
    chosen, candidates = choose_mode(target, trials, latencies)
    by_mode = {c.mode: c for c in candidates}
    assert chosen == "dynamic" and [c.mode for c in candidates if c.chosen] == ["dynamic"]
    assert "as fast as float32 (p50 within 5%) and smaller" in by_mode["dynamic"].reason
    assert "as fast as dynamic" in by_mode["float32"].reason and "but larger" in by_mode["float32"].reason
    assert by_mode["float16"].reason.startswith("slower: p50 1.500 ms, 1.44x dynamic")
    assert by_mode["int8"].reason.startswith("fails the checks: top-1 agreement") and not by_mode["int8"].passed
    assert by_mode["int16x8"].reason == "int16x8: refused at allocation" and by_mode["int16x8"].p50_ms is None
    assert all(set(c.to_dict()) == CANDIDATE_KEYS for c in candidates)

    times["dynamic"] = 1.20  # no longer a tie: float32 is simply the fastest
    latencies = {(mode, threads): latency(ms) for mode, ms in times.items()}
    chosen, candidates = choose_mode(target, trials, latencies)
    assert chosen == "float32" and "fastest mode that passes" in candidates[0].reason


def test_when_no_mode_passes_nothing_is_chosen_unless_degraded_is_allowed():
    target = get_target("rpi-armv7")  # modes: float32, float16, int8, int16x8
    threads = selection.machine_threads(target)
    failing = ("cosine similarity 0.5 < 0.98 (--min-cosine)",)
    trials = {m: Trial(m, 1000, verdict(a, failing, accuracy=a)) for m, a in zip(target.modes, (0.8, 0.85, 0.2, 0.3))}
    latencies = {(m, threads): latency(1.0) for m in target.modes}
    chosen, candidates = choose_mode(target, trials, latencies)
    assert chosen is None and not any(c.chosen for c in candidates)
    with pytest.raises(CheckFailed, match="no mode passes the checks for target rpi-armv7"):
        selection.refuse_failing([target], {"rpi-armv7": None}, {}, {"rpi-armv7": candidates}, False)
    chosen, candidates = choose_mode(target, trials, latencies, allow_degraded=True)
    assert chosen == "float16"  # the most accurate of the failing modes
    assert "--allow-degraded: the most faithful mode" in next(c for c in candidates if c.chosen).reason


def test_digits_auto_report_side_by_side(digits, tmp_path):
    code, report = cli_json(
        "convert",
        digits["model"],
        "-q",
        "auto",
        "-t",
        "x86_64",
        "-t",
        "rpi-armv7",
        "--calibration",
        digits["calibration"],
        "--calibration-size",
        "100",
        "--eval-data",
        digits["eval"],
        "-o",
        tmp_path,
    )
    assert code == 0
    assert report["thresholds"]["max_accuracy_drop"] == 1.0  # auto's default with labelled data
    source_accuracy = report["verification"]["source_accuracy"]
    for bundle in report["bundles"]:
        target = get_target(bundle["target"])
        candidates = bundle["candidates"]
        assert [c["mode"] for c in candidates] == list(target.modes)
        assert all(set(c) == CANDIDATE_KEYS for c in candidates)
        (chosen,) = [c for c in candidates if c["chosen"]]
        assert chosen["mode"] == bundle["mode"] and chosen["passed"]
        passed = [c for c in candidates if c["passed"]]
        assert chosen["p50_ms"] <= min(c["p50_ms"] for c in passed) * (1 + selection.TIE_TOLERANCE)
        assert chosen["accuracy"] == round(bundle["accuracy"]["converted"], 4)
        assert chosen["agreement"] == round(bundle["agreement"], 4)
        assert chosen["reason"].startswith(("fastest mode that passes", "as fast as"))
        for c in candidates:
            assert c["threads"] == min(target.threads, os.cpu_count())
            # passing is exactly: within 1 point of the source's accuracy and 0.9 top-1 agreement
            within = (source_accuracy - c["accuracy"]) * 100 <= 1.0 + 0.01 and c["agreement"] >= 0.9
            assert c["passed"] == within and c["p50_ms"] <= c["p99_ms"]
            if not c["passed"]:
                assert c["reason"].startswith("fails the checks") and not c["chosen"]
            elif not c["chosen"]:
                assert c["reason"].startswith(("slower: p50", "as fast as"))
        assert bundle["accuracy"]["drop_pts"] <= 1.0
    assert "dynamic" not in [c["mode"] for c in report["bundles"][1]["candidates"]]  # rpi-armv7 cannot load it
    assert any("for accuracy, not speed" in note for note in report["notes"])


def test_each_mode_is_converted_once_and_timed_with_the_targets_threads(digits, tmp_path, monkeypatch):
    converted, timed_threads = [], set()
    real_convert = quantize.convert_saved_model

    def counting_convert(export_dir, mode, *args, **kwargs):
        converted.append(mode)
        return real_convert(export_dir, mode, *args, **kwargs)

    class RecordingSession(selection.Session):
        def __init__(self, bundle, threads=None, runtime=None):
            timed_threads.add(threads)
            super().__init__(bundle, threads, runtime)

    monkeypatch.setattr(quantize, "convert_saved_model", counting_convert)
    monkeypatch.setattr(selection, "Session", RecordingSession)
    report = pipeline.convert(digits["model"], targets=["x86_64", "rpi4", "rpi5"], quantization="auto", out=tmp_path)
    assert sorted(converted) == ["dynamic", "float16", "float32"]  # once each, for three targets
    assert timed_threads == {min(t.threads, os.cpu_count()) for t in map(get_target, ("x86_64", "rpi4"))}
    for bundle in report.bundles:
        reasons = {c.mode: c.reason for c in bundle.candidates}
        assert reasons["int8"] == reasons["int16x8"].replace("int16x8", "int8") == "int8 needs --calibration data"
        assert bundle.mode in ("float32", "dynamic", "float16")


def test_auto_drops_the_broken_int8_and_keep_float_brings_it_back(outlier, tmp_path):
    common = dict(
        targets=["x86_64"],
        quantization="auto",
        calibration=outlier["calibration"],
        eval_data=outlier["eval"],
        eval_size=150,
    )
    plain = pipeline.convert(outlier["model"], out=tmp_path / "plain", **common)
    int8 = next(c for c in plain.bundles[0].candidates if c.mode == "int8")
    assert not int8.passed and not int8.chosen and int8.reason.startswith("fails the checks")
    assert int8.accuracy < 0.5 and plain.bundles[0].mode != "int8" and not plain.bundles[0].degraded
    mixed = pipeline.convert(outlier["model"], out=tmp_path / "mixed", auto_keep_float=True, **common)
    int8 = next(c for c in mixed.bundles[0].candidates if c.mode == "int8")
    assert int8.passed and int8.accuracy >= 0.9
    assert mixed.keep_float.chosen.layers == ("spike",)


def test_an_int16x8_refusal_is_a_reason_not_a_crash(vanishing, tmp_path):
    report = pipeline.convert(
        vanishing["model"],
        targets=["x86_64"],
        quantization="auto",
        calibration=vanishing["calibration"],
        out=tmp_path,
    )
    int16x8 = next(c for c in report.bundles[0].candidates if c.mode == "int16x8")
    assert "no_integer_overflow_from_quantization" in int16x8.reason and int16x8.bytes is None
    assert report.bundles[0].mode != "int16x8"
