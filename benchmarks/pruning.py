"""Pruning that pays, measured: what `edgekit convert --prune` and `--prune-channels` buy on real
workloads, pruned beside unpruned in the same run, written to benchmarks/PRUNING.md.

Workloads (built into build/bench/pruning/, nothing downloaded):
  digits       the digits sample (samples/digits/train.py), with its training split as train.npz
  wide-digits  the same data and split through a wider CNN with batch norm (64-128-256 filters,
               38 M MACs): digits-sized inputs and labels, but enough work per invoke (~0.2 ms instead
               of ~0.03 ms) for a latency ratio that measures the model, not the interpreter's overhead
  mobilenet    Keras MobileNetV2 224x224 with random weights (samples/mobilenet/build.py): latency, MACs
               and size only (random weights have no accuracy to keep)

Every figure comes from the real CLI (`python -m edgekit convert ... --json`); the latency ratios are
then re-measured on the bundles' .tflite files in alternating rounds at 1 and 2 threads. The script
also re-checks the issue's measured facts (MobileNetV2 gzip shrink, EXPERIMENTAL_SPARSITY).

Usage: .venv/bin/python benchmarks/pruning.py [--rounds N] [--skip-mobilenet] [--report-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.workloads import load_average, machine  # noqa: E402
from edgekit.native_output import quiet_native_output  # noqa: E402
from tests.conftest import load_script  # noqa: E402

WORK = ROOT / "build" / "bench" / "pruning"
REPORT = ROOT / "benchmarks" / "PRUNING.md"
RAW = ROOT / "build" / "bench" / "results" / "pruning.json"
WIDE_FILTERS = (64, 128, 256)
WIDE_EPOCHS = 15


def digits_workload() -> dict[str, Path]:
    """The digits sample as trained by its script, plus its training split as labelled .npz."""
    folder = WORK / "digits"
    train = load_script(ROOT / "samples" / "digits" / "train.py", "digits_train")
    if not (folder / "digits.keras").exists():
        train.train(folder, quiet=True)
    if not (folder / "train.npz").exists():
        images, labels = train.digit_images()
        train_idx, _ = train.split(labels)
        np.savez_compressed(folder / "train.npz", x=images[train_idx], y=labels[train_idx])
    return {
        "model": folder / "digits.keras",
        "calibration": folder / "calibration.npz",
        "eval": folder / "eval.npz",
        "train": folder / "train.npz",
    }


def wide_digits_workload(digits: dict[str, Path]) -> dict[str, Path]:
    """A wider CNN with batch norm on the same digits split (same calibration, eval and train files)."""
    path = WORK / "wide-digits" / "wide_digits.keras"
    if not path.exists():
        import keras

        train = load_script(ROOT / "samples" / "digits" / "train.py", "digits_train")
        keras.utils.set_random_seed(train.SEED)
        data = np.load(digits["train"])
        x, y = data["x"].astype(np.float32) / 255.0, data["y"]
        inputs = keras.Input((train.SIZE, train.SIZE, 1), name="image")
        h = inputs
        for index, filters in enumerate(WIDE_FILTERS, start=1):
            h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{index}")(h)
            h = keras.layers.BatchNormalization(name=f"bn{index}")(h)
            h = keras.layers.ReLU(name=f"relu{index}")(h)
            h = keras.layers.MaxPooling2D(name=f"pool{index}")(h)
        h = keras.layers.Flatten(name="flatten")(h)
        h = keras.layers.Dense(64, activation="relu", name="fc")(h)
        outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
        model = keras.Model(inputs, outputs, name="wide_digits")
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=WIDE_EPOCHS, batch_size=32, verbose=0, shuffle=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    return {**digits, "model": path}


def mobilenet_workload() -> dict[str, Path]:
    folder = WORK / "mobilenet"
    if not (folder / "mobilenet_v2.keras").exists():
        build = load_script(ROOT / "samples" / "mobilenet" / "build.py", "mobilenet_build")
        build.build(folder)
    return {"model": folder / "mobilenet_v2.keras", "calibration": folder / "calibration.npz"}


def convert(name: str, files: dict[str, Path], *options: str, image_std: str | None = None) -> dict[str, Any]:
    """One `edgekit convert --json` run (int8, x86_64 target, archive); returns its report and command."""
    out = WORK / "bundles"
    args = ["convert", str(files["model"]), "-t", "x86_64", "-q", "int8", "--calibration", str(files["calibration"])]
    if image_std:
        args += ["--mean", image_std, "--std", image_std]
    if "eval" in files:
        args += ["--eval-data", str(files["eval"])]
    args += ["--name", name, "--out", str(out), "--archive", "--force", *options]
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "edgekit", *args, "--json"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"edgekit {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    report = json.loads(result.stdout)
    shown = " ".join(str(a).replace(str(ROOT) + "/", "") for a in args)
    print(f"[pruning] {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return {"name": name, "command": f"edgekit {shown}", "report": report, "bundle": out / f"{name}-x86_64"}


def paired_latency(unpruned: Path, pruned: Path, threads: int, rounds: int) -> dict[str, Any]:
    """p50 of each model and the median per-round speed-up: fresh interpreters every round, both
    timed back to back in alternating order, zeros as input (set once, outside the timed loop)."""
    from edgekit.runtime.inspect_model import tensor_spec
    from edgekit.runtime.interpreter import find_runtime
    from edgekit.runtime.preprocess import quantize
    from edgekit.runtime.timing import time_invokes

    runtime = find_runtime()
    ratios, p50s = [], {"unpruned": [], "pruned": []}
    for index in range(rounds):
        order = [("unpruned", unpruned), ("pruned", pruned)]
        if index % 2:
            order.reverse()
        round_p50 = {}
        for label, path in order:
            with quiet_native_output():
                interpreter = runtime.interpreter_class(model_path=str(path), num_threads=threads)
                interpreter.allocate_tensors()
            detail = interpreter.get_input_details()[0]
            spec = tensor_spec(detail)
            interpreter.set_tensor(detail["index"], quantize(np.zeros(spec.shape, np.float32), spec))
            _, timings = time_invokes(interpreter.invoke, warmup=10, min_seconds=0.4)
            round_p50[label] = float(np.median(timings)) / 1e6
            p50s[label].append(round_p50[label])
        ratios.append(round_p50["unpruned"] / round_p50["pruned"])
    return {
        "threads": threads,
        "rounds": rounds,
        "unpruned_p50_ms": float(np.median(p50s["unpruned"])),
        "pruned_p50_ms": float(np.median(p50s["pruned"])),
        "speedup": float(np.median(ratios)),
        "speedup_p25": float(np.percentile(ratios, 25)),
        "speedup_p75": float(np.percentile(ratios, 75)),
    }


def tflite_zeros_per_layer(path: Path) -> list[tuple[str, str, float]]:
    """(operator, weight tensor, share of zeros) for each Conv/FC operator of a converted model."""
    from edgekit.runtime.inspect_model import plain_interpreter
    from edgekit.runtime.interpreter import ops_details

    interpreter = plain_interpreter(path)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    rows = []
    for op in ops_details(interpreter):
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            index = int(op["inputs"][1])
            weights = interpreter.get_tensor(index)
            name = details[index]["name"].split(";")[0]
            rows.append((op["op_name"], f"{name} {weights.dtype}", float((weights == 0).mean())))
    return rows


def issue_facts(mobilenet: dict[str, Path]) -> dict[str, Any]:
    """Re-check the issue's measured facts on MobileNetV2: gzip shrink with every kernel at 50 %, and
    what the converter's EXPERIMENTAL_SPARSITY does to int8 and dynamic-range models."""
    import tensorflow as tf

    from edgekit.conversion.load import load_model
    from edgekit.conversion.prune import PruneSettings
    from edgekit.conversion.prune.compare import interleaved_p50
    from edgekit.conversion.prune.magnitude import kernel_layers
    from edgekit.conversion.prune.model import prune_model
    from edgekit.conversion.quantize import convert_saved_model, saved_model_dir
    from edgekit.runtime.interpreter import find_runtime, ops_details

    source = load_model(mobilenet["model"])
    calibration = (np.load(mobilenet["calibration"])["x"][:32].astype(np.float32) - 127.5) / 127.5
    every_kernel = tuple(layer.name for layer in kernel_layers(source.keras_model))
    pruned, report = prune_model(source.keras_model, PruneSettings(sparsity=0.5, block=1, include=every_kernel))
    facts: dict[str, Any] = {"kernels": len(every_kernel), "sparsity": report.magnitude.sparsity}
    contents = {}
    for label, model in (("dense", source.keras_model), ("pruned", pruned)):
        with saved_model_dir(dataclasses.replace(source, keras_model=model)) as export:
            contents[f"{label}-int8"] = convert_saved_model(export, "int8", calibration)
            contents[f"{label}-dynamic"] = convert_saved_model(export, "dynamic")
            if label == "pruned":
                for mode in ("int8", "dynamic"):
                    converter = tf.lite.TFLiteConverter.from_saved_model(str(export))
                    converter.optimizations = [tf.lite.Optimize.DEFAULT, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
                    if mode == "int8":
                        converter.representative_dataset = lambda: ([s[None]] for s in calibration)
                        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                        converter.inference_input_type = tf.int8
                        converter.inference_output_type = tf.int8
                    with quiet_native_output():
                        contents[f"sparsity-{mode}"] = bytes(converter.convert())
    runtime = find_runtime()
    for label, content in contents.items():
        entry: dict[str, Any] = {"bytes": len(content), "gzip_bytes": len(gzip.compress(content, 9, mtime=0))}
        try:
            with quiet_native_output():
                interpreter = runtime.interpreter_class(model_content=content, num_threads=1)
                interpreter.allocate_tensors()
            ops = ops_details(interpreter)
            entry["loads"] = True
            entry["delegated"] = any(op["op_name"] == "DELEGATE" for op in ops)
        except (RuntimeError, ValueError) as exc:
            entry["loads"] = False
            entry["error"] = " ".join(str(exc).split())[:160]
        facts[label] = entry
    timed = [
        label
        for label in ("pruned-int8", "sparsity-int8", "pruned-dynamic", "sparsity-dynamic")
        if facts[label]["loads"]
    ]
    with quiet_native_output():
        p50 = interleaved_p50([contents[label] for label in timed], 1, seconds=4.0)
    for label, value in zip(timed, p50):
        facts[label]["p50_ms"] = value
    return facts


def kib(size: int | None) -> str:
    return "-" if size is None else f"{size / 1024:.1f} KiB"


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def comparison(run: dict[str, Any]) -> dict[str, Any]:
    (first,) = run["report"]["pruning"]["comparisons"]
    return first


def accuracy_change(c: dict[str, Any]) -> str:
    """Unpruned → pruned accuracy with the drop in points; "-" for a model without labelled data."""
    before, after = c["unpruned"]["accuracy"], c["pruned"]["accuracy"]
    if before is None or after is None:
        return "-"
    return f"{pct(before, 2)} → {pct(after, 2)} ({(after - before) * 100:+.2f} pts)"


def size_row(label: str, base: dict[str, Any], run: dict[str, Any]) -> str:
    """One line of the magnitude table: accuracy and sizes, pruned vs the unpruned bundle."""
    pruning = run["report"]["pruning"]
    c = comparison(run)
    archive_before = base["report"]["bundles"][0]["archive_bytes"]
    archive_after = run["report"]["bundles"][0]["archive_bytes"]
    shrink = 1 - archive_after / archive_before
    return (
        f"| {label} | {pruning['method']} | {pruning['magnitude']['block']} | {pct(pruning['magnitude']['sparsity'])} "
        f"| {accuracy_change(c)} "
        f"| {kib(c['unpruned']['tflite_bytes'])} → {kib(c['pruned']['tflite_bytes'])} "
        f"| {kib(archive_before)} → {kib(archive_after)} (**-{shrink * 100:.1f} %**) |"
    )


def speed_row(label: str, base: dict[str, Any], run: dict[str, Any], timing: dict[int, dict[str, Any]]) -> str:
    pruning = run["report"]["pruning"]
    c = comparison(run)
    accuracy = accuracy_change(c)
    speeds = " | ".join(
        f"{t['unpruned_p50_ms']:.3f} → {t['pruned_p50_ms']:.3f} ms, **{t['speedup']:.2f}x** "
        f"({t['speedup_p25']:.2f}-{t['speedup_p75']:.2f})"
        for t in (timing[1], timing[2])
    )
    return (
        f"| {label} | {pruning['method']} | {pct(pruning['channels']['removed_share'])} "
        f"| {c['unpruned']['macs'] / 1e6:.1f} M → {c['pruned']['macs'] / 1e6:.1f} M ({c['macs_ratio']:.2f}x) "
        f"| {accuracy} | {kib(c['unpruned']['tflite_bytes'])} → {kib(c['pruned']['tflite_bytes'])} | {speeds} "
        f"| {c['speedup']:.2f}x |"
    )


def write_report(
    runs: dict[str, dict[str, Any]], timings: dict[str, dict[int, dict]], facts: dict | None, info: dict
) -> None:
    m = info["machine"]
    lines = [
        "# Pruning: what it buys, measured",
        "",
        f"Written by `benchmarks/pruning.py` ({info['seconds']:.0f} s) on {m['cpu']}, {m['cores']} cores, "
        f"Python {m['python']}, ai-edge-litert {m['packages'].get('ai-edge-litert')}, "
        f"tensorflow {m['packages'].get('tensorflow-cpu')}, keras {m['packages'].get('keras')}, "
        f"edgekit {m['edgekit_commit']}; load average {info['load_before']} before, {info['load_after']} after "
        "(the machine is shared: latency ratios come from alternating rounds, the spread is p25-p75).",
        "",
        "All bundles are int8 for the x86_64 target. Accuracy is top-1 of the converted int8 model on the",
        "digits evaluation split (360 images: one image is 0.28 points), unpruned vs pruned, same run.",
        "Fine-tuning uses the digits training split (1437 images, `train.npz`, written from",
        "`samples/digits/train.py`'s `digit_images()`/`split()`), 4 epochs, Adam 2e-4.",
        "",
        "## Magnitude pruning (`--prune 0.5`): smaller archives",
        "",
        "| model | method | block | zeros (pruned layers) | int8 accuracy | .tflite | .tar.gz bundle |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("digits-prune-ft", "digits, `--prune 0.5 --finetune-data` (default block 4)"),
        ("digits-prune-ft-b1", "digits, `--prune 0.5 --prune-block 1 --finetune-data`"),
        ("digits-prune-oneshot", "digits, `--prune 0.5` one-shot (default block 1)"),
        ("wide-prune-ft", "wide-digits, `--prune 0.5 --finetune-data`"),
    ):
        base = runs["wide" if key.startswith("wide") else "digits"]
        lines.append(size_row(label, base, runs[key]))
    if "mobilenet-prune" in runs:
        lines.append(
            size_row("MobileNetV2 (random weights), `--prune 0.5` one-shot", runs["mobilenet"], runs["mobilenet-prune"])
        )
    lines += [
        "",
        "The `.tflite` does not shrink (the zeros are stored); the archive does, because deflate codes a",
        "zero in about a bit. Blocks of 4 input channels (the innermost axis of TFLite's weight layout)",
        "make the zeros contiguous runs, which compress better still; one-shot they cost more accuracy, so",
        "`--prune-block` defaults to 4 only with `--finetune-data`. MobileNetV2's archive shrinks less",
        "with the default skips: its classifier (1.28 M of 3.5 M weights) stays dense.",
        "",
        "Zeros in the converted int8 weight tensors (wide-digits, fine-tuned, read back with the",
        "interpreter; conv1-3 have their batch norm folded in):",
        "",
        "| operator | weights | zeros |",
        "|---|---|---|",
    ]
    for op, name, share in info["wide_zeros"]:
        lines.append(f"| {op} | `{name}` | {pct(share)} |")
    lines += [
        "",
        "## Channel pruning (`--prune-channels 0.3`): faster models",
        "",
        "p50 columns: invoke p50 of the unpruned → pruned int8 `.tflite`, re-measured in "
        f"{info['rounds']} alternating rounds per thread count (median speed-up, p25-p75); the last",
        "column is the speed-up `convert` itself reported in the same run (2 threads).",
        "",
        "| model | method | filters removed | MACs | int8 accuracy | .tflite | 1 thread | 2 threads | convert's own |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, base, label in (
        ("digits-channels-ft", "digits", "digits, `--finetune-data`"),
        ("wide-channels-ft", "wide", "wide-digits, `--finetune-data`"),
        ("mobilenet-channels", "mobilenet", "MobileNetV2, one-shot (no labels)"),
    ):
        if key in runs:
            lines.append(speed_row(label, runs[base], runs[key], timings[key]))
    wide = runs["wide-channels-ft"]["report"]["pruning"]
    lines += [
        "",
        f"Keras-level accuracy of wide-digits: unpruned {pct(wide['float_accuracy']['unpruned'], 2)}, one-shot "
        f"{pct(wide['float_accuracy']['one_shot'], 2)} (removed channels' mean activations moved into the next "
        f"layers' biases), fine-tuned {pct(wide['float_accuracy']['fine_tuned'], 2)}.",
        "",
        "Why the wide-digits model for the speed figure: the digits sample's int8 invoke takes about",
        "0.03 ms, most of it interpreter overhead that pruning cannot remove, so halving its MACs shows up",
        "as a small ratio. The wide model has the same inputs, labels and splits (so accuracy is measured,",
        "unlike MobileNetV2's random weights) and enough work per invoke for the ratio to measure the",
        "model. Kept channel counts are rounded to multiples of 8 for layers of 32+ filters",
        "(`--prune-channels-multiple`, 1 turns it off), since XNNPACK's int8 kernels work in packs of",
        "channels; that is why fewer than 30 % of the digits sample's filters go.",
        "",
    ]
    if facts:
        lines += [
            "## The issue's measured facts, re-checked (MobileNetV2, random weights)",
            "",
            f"Every one of its {facts['kernels']} Conv/Dense kernels zeroed to "
            f"{pct(facts['sparsity'])} (numpy, no skips, block 1):",
            "",
            "| model | .tflite | gzip | loads in LiteRT | XNNPACK delegated | p50 ms (1 thread) |",
            "|---|---|---|---|---|---|",
        ]
        for label in (
            "dense-int8",
            "pruned-int8",
            "sparsity-int8",
            "dense-dynamic",
            "pruned-dynamic",
            "sparsity-dynamic",
        ):
            f = facts[label]
            loads = "yes" if f["loads"] else f"no: {f.get('error', '')}"
            delegated = "-" if not f["loads"] else ("yes" if f["delegated"] else "no")
            p50 = f"{f['p50_ms']:.2f}" if "p50_ms" in f else "-"
            lines.append(f"| {label} | {kib(f['bytes'])} | {kib(f['gzip_bytes'])} | {loads} | {delegated} | {p50} |")
        shrink = 1 - facts["pruned-int8"]["gzip_bytes"] / facts["dense-int8"]["gzip_bytes"]
        lines += [
            "",
            f"gzip'd int8 shrink with every kernel at 50 %: **{shrink * 100:.1f} %** (the issue measured 31 %).",
            "`sparsity-*` is the pruned model converted with `Optimize.EXPERIMENTAL_SPARSITY`; edgekit does",
            "not use it (see the table).",
            "",
        ]
    lines += ["## Commands", "", "```"]
    lines += [run["command"] for run in runs.values()]
    lines += ["```", ""]
    REPORT.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="alternating latency rounds per thread count")
    parser.add_argument("--skip-mobilenet", action="store_true", help="leave MobileNetV2 out (saves minutes)")
    parser.add_argument("--report-only", action="store_true", help=f"rewrite the report from {RAW.name}")
    args = parser.parse_args(argv)
    if args.report_only:
        saved = json.loads(RAW.read_text())
        timings = {key: {int(t): v for t, v in rows.items()} for key, rows in saved["timings"].items()}
        write_report(saved["runs"], timings, saved["facts"], saved["info"])
        return 0
    started, load_before = time.time(), load_average()
    WORK.mkdir(parents=True, exist_ok=True)
    digits = digits_workload()
    wide = wide_digits_workload(digits)
    train = str(digits["train"])
    runs = {
        "digits": convert("digits", digits),
        "digits-prune-ft": convert("digits-prune-ft", digits, "--prune", "0.5", "--finetune-data", train),
        "digits-prune-ft-b1": convert(
            "digits-prune-ft-b1", digits, "--prune", "0.5", "--prune-block", "1", "--finetune-data", train
        ),
        "digits-prune-oneshot": convert("digits-prune-oneshot", digits, "--prune", "0.5"),
        "digits-channels-ft": convert(
            "digits-channels-ft", digits, "--prune-channels", "0.3", "--finetune-data", train
        ),
        "wide": convert("wide", wide),
        "wide-prune-ft": convert("wide-prune-ft", wide, "--prune", "0.5", "--finetune-data", train),
        "wide-channels-ft": convert("wide-channels-ft", wide, "--prune-channels", "0.3", "--finetune-data", train),
    }
    facts = None
    if not args.skip_mobilenet:
        mobilenet = mobilenet_workload()
        runs["mobilenet"] = convert("mobilenet", mobilenet, image_std="127.5")
        runs["mobilenet-channels"] = convert(
            "mobilenet-channels", mobilenet, "--prune-channels", "0.3", image_std="127.5"
        )
        runs["mobilenet-prune"] = convert("mobilenet-prune", mobilenet, "--prune", "0.5", image_std="127.5")
        facts = issue_facts(mobilenet)
    timings = {}
    for key, base in (
        ("digits-channels-ft", "digits"),
        ("wide-channels-ft", "wide"),
        ("mobilenet-channels", "mobilenet"),
    ):
        if key in runs:
            unpruned = runs[base]["bundle"] / "model.tflite"
            pruned = runs[key]["bundle"] / "model.tflite"
            timings[key] = {t: paired_latency(unpruned, pruned, t, args.rounds) for t in (1, 2)}
            print(
                f"[pruning] {key}: " + ", ".join(f"{t} thread(s) {v['speedup']:.2f}x" for t, v in timings[key].items())
            )
    info = {
        "machine": machine(),
        "seconds": time.time() - started,
        "load_before": load_before,
        "load_after": load_average(),
        "rounds": args.rounds,
        "wide_zeros": tflite_zeros_per_layer(runs["wide-prune-ft"]["bundle"] / "model.tflite"),
    }
    RAW.parent.mkdir(parents=True, exist_ok=True)  # first, so that the report can be rewritten from it
    raw = {key: {k: v for k, v in run.items() if k != "bundle"} for key, run in runs.items()}
    RAW.write_text(json.dumps({"runs": raw, "timings": timings, "facts": facts, "info": info}, indent=2, default=str))
    write_report(runs, timings, facts, info)
    print(f"[pruning] wrote {REPORT.relative_to(ROOT)} and {RAW.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
