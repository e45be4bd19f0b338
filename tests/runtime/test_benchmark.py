"""`edgekit bench` and its library function, on the digits bundles (real interpreters, no timed assertions)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgekit.errors import InputError, UsageError
from edgekit.runtime import bench_files, bench_report, benchmark, process, timing
from edgekit.runtime.bench_files import CSV_COLUMNS, require_matplotlib, save_latency_plot, write_csv
from edgekit.runtime.bench_report import BenchReport
from edgekit.runtime.benchmark import bench, benchmark_inputs
from edgekit.runtime.interpreter import find_runtime, load_interpreter
from edgekit.runtime.process import usable_cores
from edgekit.runtime.timing import time_invokes
from tests.conftest import ROOT, cli_json, edgekit_cli

try:
    import matplotlib  # noqa: F401

    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False

FAST = {"warmup": 2, "repeat": 15}
LATENCY_KEYS = {"p50", "p90", "p99", "mean", "std", "min", "max", "count"}
ROW_KEYS = {
    "model",
    "name",
    "quantization",
    "threads",
    "delegate_applied",
    "load_ms",
    "first_invoke_ms",
    "latency_ms",
    "throughput_per_s",
    "peak_rss_bytes",
    "macs",
    "gmacs_per_s",
    "budget_ms",
    "within_budget",
}


@pytest.fixture(scope="module")
def int8_bundle(digits_bundles) -> Path:
    return digits_bundles["bundles"]["int8"]


@pytest.fixture(scope="module")
def float32_archive(digits_bundles) -> Path:
    folder = digits_bundles["bundles"]["float32"]
    archive = folder.with_name(folder.name + ".tar.gz")
    assert archive.is_file()
    return archive


@pytest.fixture(scope="module")
def side_by_side(int8_bundle, float32_archive) -> BenchReport:
    """Two bundles (a folder and an archive) over a 1,2 thread sweep."""
    return bench([int8_bundle, float32_archive], threads=[1, 2], **FAST)


# --- the timing loop ---------------------------------------------------------------------------


class TickingClock:
    """A stand-in for `time.perf_counter_ns`: each read returns the time and then advances it by `step`."""

    def __init__(self, step: int = 1000) -> None:
        self.now = 0
        self.step = step

    def __call__(self) -> int:
        now = self.now
        self.now += self.step
        return now


@pytest.fixture
def ticking_clock(monkeypatch) -> TickingClock:
    """The timing loop's clock, ticking 1 µs per read: every timed invoke then lasts exactly 1 µs
    (two reads), whatever the machine does."""
    clock = TickingClock()
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter_ns=clock))
    return clock


class CostlyInvoke:
    """An invoke whose n-th call takes n µs on `clock`: timings then show which calls were timed."""

    def __init__(self, clock: TickingClock) -> None:
        self.clock = clock
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        self.clock.now += self.calls * 1000


def test_time_invokes_times_the_first_alone_skips_warmup_and_times_repeat(ticking_clock):
    ticking_clock.step = 0  # only invokes move the clock
    invoke = CostlyInvoke(ticking_clock)
    first_ns, timings = time_invokes(invoke, warmup=3, repeat=7)
    assert invoke.calls == 1 + 3 + 7
    assert first_ns == 1000  # call 1
    assert timings.dtype == np.int64
    assert timings.tolist() == [n * 1000 for n in range(5, 12)]  # calls 5..11; warm-up calls 2..4 untimed


def test_time_invokes_min_seconds_stops_at_the_deadline_and_keeps_every_timing(ticking_clock):
    invoke = CostlyInvoke(ticking_clock)
    ticking_clock.step = 0
    _, timings = time_invokes(invoke, warmup=0, min_seconds=20e-6)
    # The deadline is 20 µs after the first invoke ends: calls 2 to 6 take 2+3+4+5+6 = 20 µs and reach it.
    assert timings.tolist() == [2000, 3000, 4000, 5000, 6000]
    assert invoke.calls == 1 + 5


def test_time_invokes_min_seconds_grows_past_its_first_buffer(ticking_clock):
    _, timings = time_invokes(lambda: None, warmup=0, min_seconds=3000e-6)
    # Each timed invoke reads 1 µs and moves the clock 2 µs (two reads): 3000 µs hold 1500, past 1024.
    assert timings.size == 1500 and set(timings.tolist()) == {1000}


def test_benchmark_inputs_match_the_model_and_are_reproducible(digits_bundles):
    runtime = find_runtime()
    for mode in ("int8", "float32"):
        interpreter = load_interpreter(str(digits_bundles["bundles"][mode] / "model.tflite"), 1, runtime)
        details = interpreter.get_input_details()
        first, again = benchmark_inputs(interpreter), benchmark_inputs(interpreter)
        assert [index for index, _ in first] == [d["index"] for d in details]
        for (_, array), (_, same), detail in zip(first, again, details):
            assert array.dtype == np.dtype(detail["dtype"])
            assert array.shape == tuple(detail["shape"])
            np.testing.assert_array_equal(array, same)
        values = first[0][1]
        if mode == "int8":  # the whole int8 range, as TFLite's benchmark tool fills integer inputs
            assert values.min() == -128 and values.max() == 127
        else:  # uniform in [-1, 1)
            assert -1.0 <= values.min() < -0.9 and 0.9 < values.max() < 1.0
            assert abs(float(values.mean())) < 0.1
        assert len(np.unique(values)) > 100  # random, not a constant
    other_seed = benchmark_inputs(interpreter, seed=1)
    assert not np.array_equal(other_seed[0][1], first[0][1])


# --- bench() -----------------------------------------------------------------------------------


def test_rows_per_model_and_thread_count(side_by_side, int8_bundle, float32_archive):
    report = side_by_side
    assert [(row.model, row.threads) for row in report.rows] == [
        (str(int8_bundle), 1),
        (str(int8_bundle), 2),
        (str(float32_archive), 1),
        (str(float32_archive), 2),
    ]
    assert [row.quantization for row in report.rows] == ["int8", "int8", "float32", "float32"]
    assert report.runtime.name == "ai-edge-litert"
    for row in report.rows:
        latency = row.latency_ms
        assert latency.count == 15 and row.timings_ns.size == 15
        assert latency.min <= latency.p50 <= latency.p90 <= latency.p99 <= latency.max
        assert latency.p50 == pytest.approx(np.median(row.timings_ns) / 1e6)
        assert latency.p99 == pytest.approx(np.percentile(row.timings_ns, 99) / 1e6)
        assert row.throughput_per_s == pytest.approx(1000.0 / latency.mean)
        assert row.peak_rss_bytes and row.peak_rss_bytes > 10 * 2**20
        assert row.delegate_applied is True  # XNNPACK takes these CPU graphs
        assert row.macs and row.macs > 1_000_000
        assert row.gmacs_per_s == pytest.approx(row.macs / latency.p50 / 1e6)
        # No --budget-ms: each bundle's own budget is judged, never enforced.
        assert row.budget_ms == 10.0 and row.within_budget == (latency.p99 <= 10.0)
    # Same network, same counted work, whatever the precision.
    assert len({row.macs for row in report.rows}) == 1
    assert report.budget_ms is None and report.over_budget is False
    assert report.peak_rss_scope == "row"  # Linux lets us reset the high-water mark per row


def test_report_json_fields(side_by_side):
    data = json.loads(json.dumps(side_by_side.to_dict()))
    assert data["runtime"] == "ai-edge-litert"
    assert data["cores"] == usable_cores()
    assert data["over_budget"] is False
    assert len(data["rows"]) == 4
    for row in data["rows"]:
        assert set(row) == ROW_KEYS
        assert set(row["latency_ms"]) == LATENCY_KEYS


def test_default_threads_come_from_the_target_or_the_cores(int8_bundle, digits_bundles):
    from edgekit.bundle import open_bundle

    with open_bundle(int8_bundle) as opened:
        target_threads = opened.manifest.threads
    bare = int8_bundle / "model.tflite"
    report = bench([int8_bundle, bare], **FAST)
    assert [row.threads for row in report.rows] == [target_threads, usable_cores()]
    bare_row = report.rows[1]
    assert bare_row.name == int8_bundle.name and bare_row.quantization is None
    assert bare_row.budget_ms is None and bare_row.within_budget is None


def test_rows_are_timed_by_the_timing_loop(int8_bundle, ticking_clock):
    """The real interpreter under a clock ticking 1 µs per read: the first invoke and every timed
    invoke read exactly 1 µs, so the row shows what the loop measured and nothing else."""
    row = bench([int8_bundle], threads=[1], warmup=3, repeat=9).rows[0]
    assert row.first_invoke_ms == 0.001
    assert row.latency_ms.count == 9 and row.timings_ns.tolist() == [1000] * 9
    assert row.latency_ms.min == row.latency_ms.p99 == row.latency_ms.max == 0.001
    assert row.throughput_per_s == pytest.approx(1e6)
    assert row.gmacs_per_s == pytest.approx(row.macs / 0.001 / 1e6)


def test_min_seconds_instead_of_repeat(int8_bundle, ticking_clock):
    report = bench([int8_bundle], threads=[1], warmup=0, min_seconds=20e-6)
    # 20 µs after the deadline read, 1 µs (two reads) per timed invoke: 10 invokes.
    assert report.rows[0].latency_ms.count == 10
    assert report.to_dict()["repeat"] is None and report.to_dict()["min_seconds"] == 20e-6


def test_given_budget_judges_every_row_and_is_enforced(int8_bundle, float32_archive):
    report = bench([int8_bundle, float32_archive], threads=[1], budget_ms=1e-6, **FAST)
    assert all(row.within_budget is False and row.budget_ms == 1e-6 for row in report.rows)
    assert report.over_budget and len(report.over_budget_rows) == 2
    generous = bench([int8_bundle], threads=[1], budget_ms=1e6, **FAST)
    assert generous.rows[0].within_budget is True and not generous.over_budget


def test_emulated_runs_report_but_do_not_enforce_the_budget(int8_bundle, monkeypatch):
    monkeypatch.setenv("EDGEKIT_EMULATED", "1")
    report = bench([int8_bundle], threads=[1], budget_ms=1e-6, **FAST)
    assert report.emulated and not report.budget_enforced
    assert report.rows[0].within_budget is False and not report.over_budget


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"repeat": 5, "min_seconds": 1.0}, UsageError, "exclude each other"),
        ({"threads": [0]}, UsageError, "--threads"),
        ({"threads": [1, 100_000]}, UsageError, "--threads must be from 1 to 256"),
        ({"budget_ms": 0}, UsageError, "--budget-ms"),
        ({"budget_ms": float("nan")}, UsageError, "--budget-ms"),
        ({"min_seconds": -1.0}, UsageError, "--min-seconds"),
        ({"warmup": -1}, UsageError, "--warmup"),
    ],
)
def test_bad_options_are_clear_errors(int8_bundle, kwargs, error, message):
    with pytest.raises(error, match=message):
        bench([int8_bundle], **kwargs)


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        bench([tmp_path / "missing"])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a bundle"):
        bench([text])
    with pytest.raises(InputError, match="not a bundle"):
        bench([tmp_path])  # a folder without edgekit.json
    with pytest.raises(UsageError):
        bench([])


def test_csv_has_one_line_per_row(side_by_side, tmp_path):
    path = write_csv(side_by_side, tmp_path / "bench.csv")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        lines = list(reader)
    assert len(lines) == 4
    for line, row in zip(lines, side_by_side.rows):
        data = row.to_dict()  # the CSV says what the JSON report says, latency flattened
        latency = data.pop("latency_ms")
        expected = {**data, **{f"{k}_ms": v for k, v in latency.items() if k != "count"}, "count": latency["count"]}
        assert line == {column: "" if expected[column] is None else str(expected[column]) for column in CSV_COLUMNS}
    assert [p.name for p in tmp_path.iterdir()] == ["bench.csv"]  # no temporary left behind


def test_csv_into_a_missing_folder_is_refused(side_by_side, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        write_csv(side_by_side, tmp_path / "nowhere" / "bench.csv")


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (the plot extra) is not installed")
def test_plot_draws_every_row(side_by_side, tmp_path):
    require_matplotlib()
    path = save_latency_plot(side_by_side, tmp_path / "latency.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="unsupported plot format"):
        save_latency_plot(side_by_side, tmp_path / "latency.docx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latency.png"]


def test_bench_never_imports_tensorflow_or_matplotlib(int8_bundle):
    code = (
        "import sys\n"
        "from edgekit import bench\n"
        f"bench([{str(int8_bundle)!r}], threads=[1], warmup=1, repeat=3)\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr


def test_old_names_stay_importable_from_benchmark():
    """`edgekit.runtime.benchmark` was one module; callers (the bench command) still import from it."""
    assert benchmark.write_csv is bench_files.write_csv
    assert benchmark.save_latency_plot is bench_files.save_latency_plot
    assert benchmark.require_matplotlib is bench_files.require_matplotlib
    assert benchmark.CSV_COLUMNS is bench_files.CSV_COLUMNS
    assert benchmark.row_label is bench_report.row_label
    assert benchmark.BenchReport is bench_report.BenchReport and benchmark.BenchRow is bench_report.BenchRow
    assert benchmark.usable_cores is process.usable_cores
    assert benchmark.time_invokes is timing.time_invokes


# --- the command -------------------------------------------------------------------------------


def test_cli_several_bundles_over_a_thread_sweep(int8_bundle, float32_archive, tmp_path):
    csv_path = tmp_path / "rows.csv"
    code, data = cli_json(
        "bench", int8_bundle, float32_archive, "--threads", "1,2", "--warmup", "2", "--repeat", "15", "--csv", csv_path
    )
    assert code == 0
    assert [(Path(r["model"]).name, r["threads"]) for r in data["rows"]] == [
        (int8_bundle.name, 1),
        (int8_bundle.name, 2),
        (float32_archive.name, 1),
        (float32_archive.name, 2),
    ]
    for row in data["rows"]:
        assert set(row) == ROW_KEYS and row["latency_ms"]["count"] == 15
    assert data["repeat"] == 15 and data["over_budget"] is False
    with open(csv_path, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_cli_table_without_json(int8_bundle):
    result = edgekit_cli("bench", int8_bundle, "--threads", "1", "--warmup", "1", "--repeat", "5")
    assert result.returncode == 0, result.stderr
    assert "p99" in result.stdout and "GMAC/s" in result.stdout and "digits-int8 x1" in result.stdout


def test_cli_exits_3_over_a_given_budget(int8_bundle, float32_archive):
    code, data = cli_json(
        "bench", int8_bundle, float32_archive, "--threads", "1", "--repeat", "5", "--budget-ms", "0.000001"
    )
    assert code == 3
    assert data["over_budget"] is True
    assert all(row["within_budget"] is False for row in data["rows"])
    result = edgekit_cli("bench", int8_bundle, "--threads", "1", "--repeat", "5", "--budget-ms", "0.000001")
    assert result.returncode == 3
    # The runtime's own "INFO: Created ... XNNPACK delegate" line may precede ours on stderr.
    ours = [line for line in result.stderr.splitlines() if line.startswith("edgekit:")]
    assert len(ours) == 1 and ours[0].startswith("edgekit: over budget: 1 of 1 row(s)")


def test_cli_bundle_budget_alone_never_fails_the_command(int8_bundle):
    code, data = cli_json("bench", int8_bundle, "--threads", "1", "--repeat", "5")
    assert code == 0 and data["budget_ms"] is None and data["rows"][0]["budget_ms"] == 10.0


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--repeat", "5", "--min-seconds", "1"], 2, "exclude each other"),
        (["--threads", "two"], 2, "--threads"),
        (["--threads", "0"], 2, "--threads"),
        (["--csv", "no/such/folder/rows.csv"], 2, "does not exist"),
    ],
)
def test_cli_usage_errors(int8_bundle, args, code, message):
    result = edgekit_cli("bench", int8_bundle, *args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_missing_model_is_one_line(tmp_path):
    result = edgekit_cli("bench", tmp_path / "nope")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"edgekit: error: {tmp_path / 'nope'}: no such file or folder"]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (the plot extra) is not installed")
def test_cli_plot(int8_bundle, tmp_path):
    plot = tmp_path / "latency.png"
    code, _ = cli_json("bench", int8_bundle, "--threads", "1,2", "--repeat", "10", "--plot", plot)
    assert code == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_plot_without_matplotlib_fails_before_benchmarking(int8_bundle, tmp_path):
    # A stand-in package that refuses to import: matplotlib as if it were not installed.
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('matplotlib is not installed')\n")
    plot, rows = tmp_path / "latency.png", tmp_path / "rows.csv"
    result = edgekit_cli(
        "bench", int8_bundle, "--repeat", "5", "--plot", plot, "--csv", rows, env={"PYTHONPATH": str(shadow.parent)}
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "edgekit: error: --plot needs matplotlib: pip install matplotlib (the plot extra)"
    ]
    assert not plot.exists() and not rows.exists()
