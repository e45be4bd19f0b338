"""Conversion you can trust, measured: `--quantize auto` side by side for the digits sample and for
MobileNetV2, and the layer debugger on the outlier model, written to benchmarks/CONVERSION.md.

Workloads (built into git-ignored folders, nothing downloaded):
  digits         samples/digits (trained, 99% accurate): accuracy on its 360 held-out images
  mobilenet      samples/mobilenet, Keras MobileNetV2 224x224 with random weights. Its activations
                 vanish (batch norm with untrained statistics): every input gives the same uniform
                 1/1000 scores, so agreement and cosine are 1.0 for every mode and say nothing; the
                 auto report is a latency ranking (and int16x8 is refused at allocation)
  mobilenet-live the same network after one pass over the 64 calibration crops that sets each batch
                 norm's statistics to the data's: activations live, scores differ per input (but are
                 near-tied, as a random network's are), so the checks have something to judge
  outlier        samples/outlier: int8 falls to chance; debug finds the layer, keep-float recovers

Every figure comes from the real CLI (`python -m edgekit ... --json`). Latency is timed by `auto`
itself on this machine (interleaved rounds through the device half's Session); on a shared machine
the p99 column carries other people's load, the p50 ranking is what auto uses.

Usage: .venv/bin/python benchmarks/conversion_checks.py [--skip-mobilenet]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.workloads import load_average, machine, machine_lines  # noqa: E402
from tests.conftest import load_script  # noqa: E402

BUILD = ROOT / "build" / "bench" / "conversion"
DIGITS = ROOT / "samples" / "digits" / "build"
MOBILENET = ROOT / "samples" / "mobilenet" / "build"
OUTLIER = ROOT / "samples" / "outlier" / "build"
RESULTS = ROOT / "benchmarks" / "CONVERSION.md"


def edgekit(*args: Any) -> dict[str, Any]:
    """Run the real CLI with --json; a refusal (exit 4) is a result too."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "edgekit", *map(str, args), "--json"], capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 4) or not result.stdout:
        raise SystemExit(f"edgekit {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr.strip()}")
    return {**json.loads(result.stdout), "_seconds": round(seconds, 1), "_exit": result.returncode}


def ensure_workloads(skip_mobilenet: bool) -> None:
    if not (DIGITS / "digits.keras").exists():
        load_script(ROOT / "samples" / "digits" / "train.py", "digits_train").train(DIGITS, quiet=True)
    if not (OUTLIER / "outlier.keras").exists():
        load_script(ROOT / "samples" / "outlier" / "build.py", "outlier_build").build(OUTLIER)
    if skip_mobilenet:
        return
    if not (MOBILENET / "mobilenet_v2.keras").exists():
        load_script(ROOT / "samples" / "mobilenet" / "build.py", "mobilenet_build").build(MOBILENET)
    if not (BUILD / "mobilenet_v2_live.keras").exists():
        live_batch_norm(
            MOBILENET / "mobilenet_v2.keras", MOBILENET / "calibration.npz", BUILD / "mobilenet_v2_live.keras"
        )


def live_batch_norm(model_path: Path, calibration: Path, out: Path) -> None:
    """Set every batch norm's moving statistics to the calibration crops' (one training-mode pass with
    momentum 0): the random network's activations stop vanishing."""
    import keras
    import numpy as np

    model = keras.saving.load_model(model_path)
    x = (np.load(calibration)["x"].astype(np.float32) - 127.5) / 127.5
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momentum = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x[:32], training=True)
    for layer, value in zip(norms, momentum):
        layer.momentum = value
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)


def candidates_table(report: dict[str, Any], target: str) -> list[str]:
    bundle = next(b for b in report["bundles"] if b["target"] == target)
    lines = [
        f"`{target}` ({bundle['candidates'][0]['threads']} threads here) → **{bundle['mode']}**",
        "",
        "| mode | size | accuracy | agreement | p50 ms | p99 ms | chosen | why |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in bundle["candidates"]:
        size = "-" if c["bytes"] is None else f"{c['bytes'] / 1024:.1f} KB"
        accuracy = "-" if c["accuracy"] is None else f"{c['accuracy']:.2%}"
        agreement = "-" if c["agreement"] is None else f"{c['agreement']:.3f}"
        p50 = "-" if c["p50_ms"] is None else f"{c['p50_ms']:.3f}"
        p99 = "-" if c["p99_ms"] is None else f"{c['p99_ms']:.3f}"
        reason = c["reason"].replace("|", "/")
        lines.append(
            f"| {c['mode']} | {size} | {accuracy} | {agreement} | {p50} | {p99} | {'yes' if c['chosen'] else ''} "
            f"| {reason} |"
        )
    return [*lines, ""]


def auto_section(title: str, command: str, report: dict[str, Any], targets: list[str]) -> list[str]:
    lines = [f"## {title}", "", f"    {command}", ""]
    verification = report["verification"]
    lines.append(
        f"Checked on {verification['samples']} {verification['data']} samples"
        + (f", source accuracy {verification['source_accuracy']:.2%}" if verification["source_accuracy"] else "")
        + f"; thresholds {report['thresholds']}; {report['_seconds']} s wall."
    )
    lines.append("")
    for target in targets:
        lines += candidates_table(report, target)
    return lines


def debug_section(debug: dict[str, Any], mixed: dict[str, Any], command: str, convert_command: str) -> list[str]:
    lines = ["## The outlier model: debug, then keep the worst layer in float", "", f"    {command}", ""]
    lines += ["| # | layer | op | channel error | rmse/scale | int8 range |", "|---:|---|---|---:|---:|---:|"]
    for rank, layer in enumerate(debug["layers"], start=1):
        lines.append(
            f"| {rank} | {layer['layer']} | {layer['op']} | {layer['channel_error']:.4f} | "
            f"{layer['rmse_over_scale']:.3f} | {layer['range']:.4g} |"
        )
    int8 = debug["int8"]
    lines += ["", f"    {convert_command}", ""]
    lines += ["| model | size | top-1 agreement | accuracy | passes |", "|---|---:|---:|---:|---|"]
    source = int8["accuracy"]["source"]
    lines.append(f"| float source | - | - | {source:.2%} | |")
    keep = mixed["keep_float"]
    for label, model in [
        ("int8", keep["int8"]),
        *[(f"int8, keep {', '.join(s['keep_float'])} float", s) for s in keep["steps"]],
    ]:
        lines.append(
            f"| {label} | {model['bytes'] / 1024:.1f} KB | {model['agreement']:.3f} | "
            f"{model['accuracy']['converted']:.2%} | {'yes' if model['passed'] else 'no'} |"
        )
    chosen = keep["mixed"]
    lost = source - keep["int8"]["accuracy"]["converted"]
    regained = chosen["accuracy"]["converted"] - keep["int8"]["accuracy"]["converted"]
    lines += [
        "",
        f"Bundled: int8 with {', '.join(chosen['float_layers'])} in float; recovered {regained / lost:.0%} of the "
        f"{lost * 100:.1f} points int8 lost.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-mobilenet", action="store_true")
    args = parser.parse_args(argv)
    ensure_workloads(args.skip_mobilenet)
    out = BUILD / "bundles"
    sections = [
        "# Conversion checks, measured",
        "",
        *machine_lines(machine()),
        f"Load average at start: {load_average()}",
        "",
    ]
    digits_args = [
        "convert",
        DIGITS / "digits.keras",
        "-q",
        "auto",
        "-t",
        "x86_64",
        "-t",
        "rpi-armv7",
        "--calibration",
        DIGITS / "calibration.npz",
        "--eval-data",
        DIGITS / "eval",
        "--labels",
        ROOT / "samples" / "digits" / "labels.txt",
        "-o",
        out,
        "--force",
    ]
    report = edgekit(*digits_args)
    sections += auto_section("digits: --quantize auto", command(digits_args), report, ["x86_64", "rpi-armv7"])
    if not args.skip_mobilenet:
        for name, path in (
            ("MobileNetV2 (random weights, as the sample)", MOBILENET / "mobilenet_v2.keras"),
            ("MobileNetV2, batch norm statistics from the calibration crops", BUILD / "mobilenet_v2_live.keras"),
        ):
            mobilenet_args = [
                "convert",
                path,
                "-q",
                "auto",
                "-t",
                "x86_64",
                "-t",
                "rpi-armv7",
                "--mean",
                "127.5",
                "--std",
                "127.5",
                "--calibration",
                MOBILENET / "calibration.npz",
                "-o",
                out,
                "--force",
                "--allow-degraded",
            ]
            report = edgekit(*mobilenet_args)
            sections += auto_section(
                name + ": --quantize auto", command(mobilenet_args), report, ["x86_64", "rpi-armv7"]
            )
    debug_args = [
        "debug",
        OUTLIER / "outlier.keras",
        "--calibration",
        OUTLIER / "calibration.npz",
        "--eval-data",
        OUTLIER / "eval.npz",
    ]
    mixed_args = [
        "convert",
        OUTLIER / "outlier.keras",
        "-q",
        "int8",
        "-t",
        "x86_64",
        "--calibration",
        OUTLIER / "calibration.npz",
        "--eval-data",
        OUTLIER / "eval.npz",
        "--auto-keep-float",
        "-o",
        out,
        "--force",
    ]
    sections += debug_section(edgekit(*debug_args), edgekit(*mixed_args), command(debug_args), command(mixed_args))
    RESULTS.write_text("\n".join(sections) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def command(args: list[Any]) -> str:
    shown = [str(Path(a).relative_to(ROOT)) if isinstance(a, Path) and a.is_relative_to(ROOT) else str(a) for a in args]
    return "edgekit " + " ".join(shown)


if __name__ == "__main__":
    sys.exit(main())
