"""The `edgekit` command as a user runs it: exit codes, one-line errors, JSON that parses."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli_json, edgekit_cli


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

    code, run = cli_json("run", bundle["archive"], digits["images"], "--repeat", "10", "--top-k", "2")
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
