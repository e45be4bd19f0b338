"""Shared fixtures: the digits sample is trained once per session and converted once per mode."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
MODES = ("float32", "dynamic", "float16", "int8")


def load_script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sample_files(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of each file of a sample, its build folder aside: what training must not touch."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "build" not in p.relative_to(folder).parts and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> dict:
    """The digits sample trained from scratch (seeded) into a temporary folder: model, calibration and
    evaluation splits, the demo images and labels. The sample's own files are left alone."""
    sample = ROOT / "samples" / "digits"
    before = _sample_files(sample)
    train = load_script(sample / "train.py", "digits_train")
    out = tmp_path_factory.mktemp("digits")
    summary = train.train(out, quiet=True, samples=out)
    assert _sample_files(sample) == before, "training the digits fixture changed files under samples/digits"
    return {
        "dir": out,
        "model": out / "digits.keras",
        "calibration": out / "calibration.npz",
        "eval": out / "eval.npz",
        "eval_dir": out / "eval",
        "images": out / "images",
        "labels": out / "labels.txt",
        "accuracy": summary["eval_accuracy"],
    }


@pytest.fixture(scope="session")
def digits_bundles(digits, tmp_path_factory) -> dict:
    """One x86_64 bundle of the digits sample per quantization mode, plus the conversion reports."""
    from edgekit.conversion.pipeline import convert

    out = tmp_path_factory.mktemp("bundles")
    bundles, reports = {}, {}
    for mode in MODES:
        report = convert(
            digits["model"],
            targets=["x86_64"],
            quantization=mode,
            calibration=digits["calibration"],
            labels=digits["labels"],
            name=f"digits-{mode}",
            out=out,
            archive=True,
        )
        bundles[mode] = Path(report.bundles[0].path)
        reports[mode] = report
    return {"dir": out, "bundles": bundles, "reports": reports}


def edgekit_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `edgekit` command in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or ROOT,
        timeout=600,
    )


def cli_json(*args: str, env: dict | None = None) -> tuple[int, dict]:
    result = edgekit_cli(*args, "--json", env=env)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)
