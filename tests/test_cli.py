"""The `edgekit` command as a user runs it: exit codes, one-line errors, JSON that parses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_json, edgekit_cli


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgekit:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_and_version():
    result = edgekit_cli("--help")
    assert result.returncode == 0
    for command in ("convert", "run", "inspect", "targets"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout
    assert edgekit_cli("--version").stdout.startswith("edgekit ")
    assert "--calibration" in edgekit_cli("convert", "--help").stdout
    assert "--budget-ms" in edgekit_cli("run", "--help").stdout


def test_targets_list_and_show():
    code, targets = cli_json("targets")
    assert code == 0 and {"rpi4", "rpi5", "rpi-armv7", "jetson-nano", "jetson-orin", "x86_64"} <= {
        t["name"] for t in targets
    }
    code, rpi4 = cli_json("targets", "show", "rpi4")
    assert code == 0 and rpi4["cpu"] == "cortex-a72" and rpi4["budget_ms"] == 10.0
    assert_one_line_error(edgekit_cli("targets", "show", "rpi9"), 1, "unknown target 'rpi9'", "rpi4")
    table = edgekit_cli("targets")
    assert table.returncode == 0 and "jetson-orin" in table.stdout


def test_convert_then_run_then_inspect(digits, tmp_path):
    out = tmp_path / "bundles"
    code, report = cli_json(
        "convert",
        digits["model"],
        "-t",
        "x86_64",
        "-t",
        "rpi4",
        "-q",
        "int8",
        "--calibration",
        digits["calibration"],
        "--calibration-size",
        "100",
        "--labels",
        digits["labels"],
        "--out",
        out,
        "--archive",
    )
    assert code == 0
    assert [b["target"] for b in report["bundles"]] == ["x86_64", "rpi4"]
    bundle = report["bundles"][0]
    assert bundle["mode"] == "int8" and bundle["size_ratio"] < 0.3 and bundle["archive"].endswith(".tar.gz")
    assert (out / "digits-x86_64" / "edgekit.json").is_file() and (out / "digits-rpi4.tar.gz").is_file()

    # A budget no machine misses: this test is about answers and fields, not this machine's speed.
    code, run = cli_json(
        "run", bundle["archive"], digits["images"], "--repeat", "10", "--top-k", "2", "--budget-ms", "1000000"
    )
    assert code == 0
    for key in (
        "runtime",
        "threads",
        "latency_ms",
        "end_to_end_ms",
        "load_ms",
        "budget_ms",
        "within_budget",
        "results",
    ):
        assert key in run
    assert run["within_budget"] is True and len(run["results"]) == 10
    assert all(len(r["top_k"]) == 2 and {"index", "label", "score"} <= set(r["top_k"][0]) for r in run["results"])

    over = edgekit_cli("run", out / "digits-x86_64", "--budget-ms", "0.000001", "--repeat", "5")
    assert_one_line_error(over, 3, "over budget")
    assert "OVER budget" in over.stdout
    over_json = edgekit_cli("run", out / "digits-x86_64", "--budget-ms", "0.000001", "--repeat", "5", "--json")
    assert over_json.returncode == 3 and json.loads(over_json.stdout)["within_budget"] is False

    code, info = cli_json("inspect", out / "digits-x86_64")
    assert code == 0 and info["operators"]["CONV_2D"] == 3 and info["manifest"]["name"] == "digits"
    assert info["weight_dtypes"].get("int8", 0) > 0.9 * info["weight_bytes"] - 2048
    code, bare = cli_json("inspect", out / "digits-x86_64" / "model.tflite")
    assert code == 0 and bare["manifest"] is None and bare["inputs"][0]["dtype"] == "int8"

    again = edgekit_cli("convert", digits["model"], "-t", "x86_64", "-q", "float32", "--out", out)
    assert_one_line_error(again, 1, "already exists", "--force")


def test_bad_input_is_one_line_not_a_traceback(tmp_path, digits_bundles):
    assert_one_line_error(edgekit_cli("convert", tmp_path / "missing.keras"), 1, "missing.keras", "no such file")
    (tmp_path / "model.keras").write_text("not a zip")
    assert_one_line_error(
        edgekit_cli("convert", tmp_path / "model.keras", "-t", "x86_64", "-q", "float32"),
        1,
        "model.keras",
        "not a Keras .keras file",
    )
    assert_one_line_error(edgekit_cli("run", tmp_path), 1, "no edgekit.json")
    assert_one_line_error(edgekit_cli("run", digits_bundles["bundles"]["int8"], tmp_path / "nope.png"), 1, "nope.png")
    (tmp_path / "empty.tflite").write_bytes(b"")
    assert_one_line_error(edgekit_cli("inspect", tmp_path / "empty.tflite"), 1, "empty.tflite", "too small")
    usage = edgekit_cli("run", digits_bundles["bundles"]["int8"], "--repeat", "0")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_an_unexpected_exception_is_one_line_unless_debugging(monkeypatch, capsys):
    """A bug still gets one line and exit 1, never a traceback; EDGEKIT_DEBUG=1 lets it through."""
    import click

    from edgekit.cli.output import DEBUG_ENV, reports_errors

    @reports_errors
    def broken() -> None:
        raise AttributeError("'list' object has no attribute '_type_spec'")

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(click.exceptions.Exit) as exited:
        broken()
    assert exited.value.exit_code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: internal error: AttributeError") and DEBUG_ENV in lines[0]
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(AttributeError):
        broken()


# --- what `make demo` and the README do -------------------------------------------------------------


def test_convert_without_targets_or_modes_as_make_demo_runs_it(digits, tmp_path):
    """No -t and no -q: one bundle per target profile, each in its target's own mode."""
    out = tmp_path / "bundles"
    code, report = cli_json(
        "convert", digits["model"], "--calibration", digits["calibration"], "--eval-data", digits["eval"],
        "--labels", digits["labels"], "--out", out, "--archive", "--force",
    )  # fmt: skip
    assert code == 0
    _, targets = cli_json("targets")
    assert {b["target"]: b["mode"] for b in report["bundles"]} == {t["name"]: t["quantization"] for t in targets}
    for b in report["bundles"]:
        assert (out / f"digits-{b['target']}" / "edgekit.json").is_file()
        assert (out / f"digits-{b['target']}.tar.gz").is_file()
        assert b["accuracy"]["converted"] >= b["accuracy"]["source"] - 0.05  # labelled eval data: accuracy measured
    code, run = cli_json("run", out / "digits-x86_64", digits["images"], "--top-k", "3", "--budget-ms", "1000000")
    assert code == 0 and len(run["results"]) == 10
    right = [r for r in run["results"] if r["top_k"][0]["label"] == r["input"].rsplit("digit-", 1)[1][0]]
    assert len(right) >= 9, run["results"]


def test_readme_python_example(digits, tmp_path):
    """The README's `edgekit.convert` / `edgekit.run` example, run as written in a folder holding its files."""
    from PIL import Image

    readme = (ROOT / "README.md").read_text()
    example = readme.split("```python\nimport edgekit\n", 1)[1].split("```", 1)[0]
    (tmp_path / "digits.keras").symlink_to(digits["model"])
    (tmp_path / "calib.npz").symlink_to(digits["calibration"])
    Image.open(digits["images"] / "digit-7.png").convert("RGB").save(tmp_path / "photo.jpg", quality=95)
    script = "import edgekit\n" + example + "print('top', result.results[0].top_k[0].index)\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "top 7"
    assert (tmp_path / "bundles" / "digits-rpi4" / "edgekit.json").is_file()


# --- options no other test reaches ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict:
    """Two untrained models, built in a second: an RGB one (per-channel --mean/--std) and a legacy .h5 whose
    input structure makes Keras warn on every call (what --verbose must show and nothing else may)."""
    import keras

    folder = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(0)
    rgb = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    rgb.save(folder / "rgb.keras")
    image = keras.Input((8, 8, 1))
    legacy = keras.Model([image], [keras.layers.Dense(3)(keras.layers.Flatten()(image))])
    legacy.save(folder / "legacy.h5")
    return {"rgb": folder / "rgb.keras", "h5": folder / "legacy.h5"}


def test_comma_separated_mean_and_std_reach_the_manifest(tiny_models, tmp_path):
    code, report = cli_json(
        "convert", tiny_models["rgb"], "-t", "x86_64", "-q", "float32", "--out", tmp_path,
        "--mean", "1,2,3", "--std", "4", "--std", "5,6",
    )  # fmt: skip
    assert code == 0, report
    manifest = json.loads((Path(report["bundles"][0]["path"]) / "edgekit.json").read_text())
    assert manifest["inputs"][0]["preprocess"]["mean"] == [1.0, 2.0, 3.0]
    assert manifest["inputs"][0]["preprocess"]["std"] == [4.0, 5.0, 6.0]
    bad = edgekit_cli("convert", tiny_models["rgb"], "-t", "x86_64", "--mean", "1,x")
    assert_usage_error(bad, "--mean", "'x' is not a number")


def test_python_warnings_only_with_verbose(tiny_models, tmp_path):
    args = ["convert", tiny_models["h5"], "-t", "x86_64", "-q", "float32", "--out", tmp_path, "--force", "--json"]
    quiet = edgekit_cli(*args)
    assert quiet.returncode == 0, quiet.stderr
    assert "Warning" not in quiet.stderr and "site-packages" not in quiet.stderr
    verbose = edgekit_cli(*args, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    # Keras's "structure of `inputs` doesn't match" warning on legacy .h5 files came from eager calls,
    # which conversion no longer makes (the checks run the traced graph); what --verbose must still do
    # is leave Python's warnings on, and the default keep them off:
    script = (
        "import sys, warnings\n"
        "from edgekit.cli.output import python_warnings\n"
        "python_warnings(sys.argv[1] == 'verbose')\n"
        "warnings.warn('from a library', UserWarning)\n"
    )
    for mode, shown in (("verbose", True), ("quiet", False)):
        run = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, cwd=ROOT)
        assert ("UserWarning: from a library" in run.stderr) is shown, run.stderr


def test_keep_float_comma_separated(digits, tmp_path):
    code, report = cli_json(
        "convert", digits["model"], "-t", "x86_64", "-q", "int8", "--calibration", digits["calibration"],
        "--calibration-size", "50", "--keep-float", "conv1,probs", "--out", tmp_path,
    )  # fmt: skip
    assert code == 0
    bundle = report["bundles"][0]
    assert bundle["mode"] == "int8" and set(bundle["keep_float"]) >= {"conv1", "probs"}
    info = cli_json("inspect", bundle["path"])[1]
    assert info["weight_dtypes"].get("float32", 0) > 0  # the kept layers' weights stayed float


def test_targets_dir_through_the_cli(digits, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (ROOT / "targets" / "x86_64.toml").read_text()
    (profiles / "lab-box.toml").write_text(text.replace('name = "x86_64"', 'name = "lab-box"'))
    code, targets = cli_json("targets", "--targets-dir", profiles)
    assert code == 0 and "lab-box" in {t["name"] for t in targets} and "rpi4" in {t["name"] for t in targets}
    code, report = cli_json(
        "convert", digits["model"], "-t", "lab-box", "-q", "float32", "--targets-dir", profiles, "--out", tmp_path
    )
    assert code == 0 and [b["target"] for b in report["bundles"]] == ["lab-box"]
    assert (tmp_path / "digits-lab-box" / "edgekit.json").is_file()
    assert_one_line_error(edgekit_cli("convert", digits["model"], "-t", "lab-box", "--out", tmp_path), 1, "lab-box")


@pytest.mark.parametrize("threads", ["1", "2"])
def test_run_with_threads(digits_bundles, threads):
    code, run = cli_json("run", digits_bundles["bundles"]["int8"], "--threads", threads, "--repeat", "2",
                         "--budget-ms", "1000000")  # fmt: skip
    assert code == 0 and run["threads"] == int(threads)


def test_bench_with_a_runtime_named(digits_bundles):
    args = ["bench", digits_bundles["bundles"]["int8"], "--threads", "1", "--repeat", "3", "--budget-ms", "1000000"]
    code, report = cli_json(*args, "--runtime", "ai-edge-litert")
    assert code == 0 and report["runtime"] == "ai-edge-litert" and len(report["rows"]) == 1
    assert_one_line_error(edgekit_cli(*args, "--runtime", "no-such-runtime"), 2, "unknown runtime")


def test_debug_options(digits):
    code, report = cli_json(
        "debug", digits["model"], "--calibration", digits["calibration"], "--calibration-size", "60",
        "--eval-data", digits["eval"], "--eval-size", "100", "--labels", digits["labels"],
        "--min-agreement", "0.5", "--min-cosine", "0.5", "--max-accuracy-drop", "50", "--no-search",
        "--mean", "0", "--std", "255",
    )  # fmt: skip
    assert code == 0
    assert report["verification"]["data"] == "eval-data" and report["verification"]["samples"] == 100
    assert report["verification"]["labelled"] is True
    thresholds = {"min_agreement": 0.5, "min_cosine": 0.5, "max_accuracy_drop": 50.0, "min_accuracy": None}
    assert report["thresholds"] == {**thresholds, "max_channel_error": 0.2}
    assert report["suggestion"] is None and report["int8"]["passed"] is True
    table = edgekit_cli("debug", digits["model"], "--calibration", digits["calibration"], "--calibration-size",
                        "60", "--top", "3")  # fmt: skip
    assert table.returncode == 0, table.stderr
    ranks = [line.split()[0] for line in table.stdout.splitlines() if line.strip()[:2] in ("1 ", "2 ", "3 ", "4 ")]
    assert ranks == ["1", "2", "3"], table.stdout


def assert_usage_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args", [["convert", "x"], ["run", "x"], ["bench", "x"], ["inspect", "x"], ["debug", "x"], ["targets"],
             ["targets", "show", "x"], ["verify", "x"], ["sign", "x"], ["keygen", "x"], []],
)  # fmt: skip
def test_an_unknown_option_is_a_usage_error(args):
    assert_usage_error(edgekit_cli(*args, "--no-such-option"), "No such option", "--no-such-option")


def test_the_accuracy_gate_exits_4(digits, tmp_path):
    """Labelled data the int8 model must get wrong somewhere: blends of two digits, labelled with the float
    model's own answers and kept where its top two are closest. --max-accuracy-drop 0 then refuses int8."""
    import keras
    import numpy as np

    data = np.load(digits["eval"])
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, len(data["x"]), (2, 2000))
    share = rng.uniform(0.3, 0.7, (2000, 1, 1, 1))
    x = np.round(share * data["x"][first] + (1 - share) * data["x"][second]).astype(np.uint8)
    scores = keras.saving.load_model(digits["model"]).predict(x / np.float32(255), verbose=0)
    top_two = np.sort(scores, axis=1)[:, -2:]
    closest = np.argsort(top_two[:, 1] - top_two[:, 0])[:200]
    np.savez(tmp_path / "blends.npz", x=x[closest], y=scores[closest].argmax(axis=1))
    out = tmp_path / "out"
    result = edgekit_cli(
        "convert", digits["model"], "-t", "x86_64", "-q", "int8", "--calibration", digits["calibration"],
        "--eval-data", tmp_path / "blends.npz", "--labels", digits["labels"], "--max-accuracy-drop", "0",
        "--min-agreement", "0", "--min-cosine", "0", "--out", out,
    )  # fmt: skip
    assert_one_line_error(result, 4, "accuracy")
    assert not out.exists() or not any(out.iterdir())


def test_inspect_an_archive(digits_bundles):
    archive = digits_bundles["reports"]["int8"].bundles[0].archive
    code, info = cli_json("inspect", archive)
    assert code == 0 and info["manifest"]["name"] == "digits-int8" and info["operators"]["CONV_2D"] == 3
    table = edgekit_cli("inspect", archive)
    assert table.returncode == 0 and "CONV_2D" in table.stdout and "digits-int8" in table.stdout


# --- recipes --------------------------------------------------------------------------------------


def test_inspect_shows_the_recipe_a_bundle_was_made_with(digits_bundles, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(digits_bundles["bundles"]["float32"], bundle)
    manifest = json.loads((bundle / "edgekit.json").read_text())
    manifest["conversion"]["recipe"] = {"quantization": "float32", "calibration_size": 123, "targets": ["x86_64"]}
    (bundle / "edgekit.json").write_text(json.dumps(manifest, indent=2))
    table = edgekit_cli("inspect", bundle)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any(line.startswith("recipe") for line in lines), table.stdout
    assert any("calibration_size" in line and "123" in line for line in lines), table.stdout
    assert any("targets" in line and "x86_64" in line for line in lines), table.stdout


def test_convert_recipe_file_with_flags_overriding_it(digits, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f'targets = ["x86_64"]\nquantization = "int8"\ncalibration = "{digits["calibration"]}"\n'
        'calibration_size = 80\nname = "from-recipe"\n'
    )
    out = tmp_path / "out"
    code, report = cli_json("convert", digits["model"], "--recipe", recipe, "-q", "float16", "--out", out)
    assert code == 0
    bundle = report["bundles"][0]
    assert bundle["target"] == "x86_64" and bundle["mode"] == "float16"  # the flag overrides the recipe
    manifest = json.loads((out / "from-recipe-x86_64" / "edgekit.json").read_text())
    assert manifest["conversion"]["recipe"]["quantization"] == "float16"
    assert manifest["conversion"]["recipe"]["calibration_size"] == 80  # the recipe's, not the flag's default
    code, info = cli_json("inspect", out / "from-recipe-x86_64")
    assert code == 0 and info["recipe"]["calibration_size"] == 80


# --- the progress bar -----------------------------------------------------------------------------


def test_progress_bar_counts_or_spins_and_stays_off_the_pipe(monkeypatch):
    import io

    from rich.console import Console

    from edgekit.cli.progress_bar import ProgressBar

    with ProgressBar("converting") as bar:  # stdout is not a terminal under pytest: nothing drawn
        bar("calibrated", 1, 3)
        assert bar._progress is None

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    with ProgressBar("debugging", background=False) as bar:

        def shown() -> str:
            text = io.StringIO()
            Console(file=text, width=100).print(bar._progress.make_tasks_table(bar._progress.tasks))
            return text.getvalue()

        bar("calibrated", 1, None)  # the total is not known yet: a spinner and the count, never "None"
        assert "debugging: calibrated" in shown() and "None" not in shown() and " 1 " in shown()
        bar("measured", 2, 5)
        assert "debugging: measured" in shown() and "2/5" in shown()
