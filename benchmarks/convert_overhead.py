"""4. `edgekit convert` time vs the bare TFLite converter call with the same settings (digits sample).

In one process (TensorFlow imported and warmed up once, untimed), alternating rounds of:
  edgekit  edgekit.convert(digits.keras, targets=["x86_64"], quantization=MODE, calibration=...)
           the whole command: load, export, calibration samples, conversion(s), fidelity check,
           bundle written atomically with SHA-256s
  bare     keras.saving.load_model + tf.lite.TFLiteConverter.from_keras_model with the same
           settings (int8: Optimize.DEFAULT, the same 300 calibration samples, TFLITE_BUILTINS_INT8,
           int8 input/output) + write the .tflite
Reported separately: edgekit's converter call alone (the manifest's conversion seconds) and the
fidelity check (source model and converted model run on the check samples, outputs compared).

Usage: python benchmarks/convert_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import DIGITS_BUILD, ROOT, Results, alternate, quiet_fds, row  # noqa: E402

MODES = ("float32", "int8")
MODEL = DIGITS_BUILD / "digits.keras"
CALIBRATION = DIGITS_BUILD / "calibration.npz"
LABELS = ROOT / "samples" / "digits" / "labels.txt"


def calibration_samples() -> np.ndarray:
    """What a user would feed the converter: the calibration pixels scaled to [0, 1]."""
    with np.load(CALIBRATION) as data:
        return data["x"][:300].astype(np.float32) / np.float32(255)


def bare_convert(mode: str, samples: np.ndarray, out: Path) -> float:
    """Seconds for load + TFLiteConverter with the mode's settings + write."""
    import keras
    import tensorflow as tf

    start = time.perf_counter()
    model = keras.saving.load_model(MODEL)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for sample in samples:
                yield [sample[None]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    out.write_bytes(converter.convert())
    return time.perf_counter() - start


def edgekit_convert(mode: str, out: Path) -> tuple[float, float, bytes]:
    """(seconds for the whole convert(), seconds of its converter call, the .tflite bytes)."""
    from edgekit.conversion.pipeline import convert

    start = time.perf_counter()
    report = convert(
        MODEL,
        targets=["x86_64"],
        quantization=mode,
        calibration=CALIBRATION,
        labels=LABELS,
        name=f"digits-{mode}",
        out=out,
        force=True,
    )
    seconds = time.perf_counter() - start
    result = report.bundles[0]
    return seconds, result.conversion_seconds, (Path(result.path) / "model.tflite").read_bytes()


def edgekit_phases(mode: str, samples: np.ndarray) -> dict[str, float]:
    """Seconds of each step `convert()` takes before its fidelity check, called one by one."""
    from edgekit.conversion.load import load_model
    from edgekit.conversion.quantize import convert_saved_model, saved_model_dir

    phases = {}
    start = time.perf_counter()
    source = load_model(MODEL)
    phases["load"] = time.perf_counter() - start
    start = time.perf_counter()
    with saved_model_dir(source) as export_dir:
        phases["export SavedModel"] = time.perf_counter() - start
        start = time.perf_counter()
        convert_saved_model(export_dir, mode, samples if mode == "int8" else None)
        phases[f"TFLiteConverter.from_saved_model ({mode})"] = time.perf_counter() - start
        if mode != "float32":
            # convert() always converts float32 too: the size ratio and the reference for other modes.
            start = time.perf_counter()
            convert_saved_model(export_dir, "float32")
            phases["extra float32 conversion"] = time.perf_counter() - start
    return phases


def fresh_state() -> None:
    """Drop what earlier conversions left in Keras/TensorFlow, so every round starts alike (untimed)."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def fidelity_seconds(content: bytes, samples: np.ndarray) -> float:
    """What edgekit's fidelity check costs: both models on the check samples, outputs compared."""
    from edgekit.conversion.load import load_model
    from edgekit.conversion.tflite_model import TFLiteModel
    from edgekit.conversion.verify import compare_outputs

    source = load_model(MODEL)
    check = samples[:200]
    start = time.perf_counter()
    reference = source.predict(check)
    compare_outputs(reference, TFLiteModel(content).predict(check), True, False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if not MODEL.is_file():
        raise SystemExit(f"{MODEL}: missing; build it with `make sample` (or `make bench`)")
    samples = calibration_samples()
    from edgekit.conversion.inputs import image_preprocess, load_samples
    from edgekit.conversion.quiet import import_tensorflow

    import_tensorflow()
    from edgekit.bundle import TensorSpec

    preprocess = image_preprocess((None, 32, 32, 1), None, None)
    same = load_samples(CALIBRATION, TensorSpec("image", (1, 32, 32, 1), "float32"), preprocess, 300).x
    assert np.allclose(same, samples), "bare and edgekit calibration samples differ"

    results = Results("convert_overhead")
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp, quiet_fds():
        work = Path(tmp)
        bare_convert("float32", samples, work / "warmup.tflite")  # TensorFlow's first conversion pays one-off setup
        timings = {mode: {"edgekit": [], "converter": [], "bare": [], "fidelity": []} for mode in MODES}
        for mode in MODES:
            for _, edgekit_first in alternate(args.rounds):
                for side in ("edgekit", "bare") if edgekit_first else ("bare", "edgekit"):
                    fresh_state()
                    if side == "edgekit":
                        total, converter, content = edgekit_convert(mode, work / "bundles")
                        timings[mode]["edgekit"].append(total)
                        timings[mode]["converter"].append(converter)
                    else:
                        timings[mode]["bare"].append(bare_convert(mode, samples, work / f"bare-{mode}.tflite"))
            fresh_state()
            timings[mode]["fidelity"].append(fidelity_seconds(content, samples))
            fresh_state()
            timings[mode]["phases"] = edgekit_phases(mode, samples)
            timings[mode]["edgekit_bytes"] = len(content)
            timings[mode]["bare_bytes"] = (work / f"bare-{mode}.tflite").stat().st_size
    for mode in MODES:
        t = timings[mode]
        edgekit_s, bare_s = float(np.median(t["edgekit"])), float(np.median(t["bare"]))
        converter_s, fidelity_s = float(np.median(t["converter"])), float(np.median(t["fidelity"]))
        results.add(
            row(
                "4",
                f"`edgekit convert -q {mode}` / bare TFLiteConverter, same settings",
                "digits",
                None,
                f"{edgekit_s:.2f} s (converter {converter_s:.2f} s, fidelity {fidelity_s:.2f} s)",
                f"{bare_s:.2f} s",
                edgekit_s / bare_s,
                "report",
                None,
                rounds=args.rounds,
                seconds=t,
                edgekit_phases_s=t["phases"],
                edgekit_without_fidelity_s=edgekit_s - fidelity_s,
                ratio_without_fidelity=(edgekit_s - fidelity_s) / bare_s,
            )
        )
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
