"""12. The ONNX test models in every mode: size, fidelity against onnxruntime on the original .onnx, and
invoke p50 (1 thread, XNNPACK), per model and mode.

The models are the ones tests/onnx builds (samples/onnx/models.py): the pattern classifier, the dynamic
classifier fixed at 1x3x48x48, the two-output model and the NCHW segmenter. Each is loaded once
(one onnx2tf run) and converted to every mode from its float SavedModel, calibrated on 120 synthetic
patterns; fidelity is measured on 60 others, output by output (cosine; top-1 agreement for the
classifiers). Timings are of the interpreter's invoke(), not interleaved: read them as sizes, not
as ratios (onnx_vs_onnxruntime.py measures ratios).

Usage: python benchmarks/onnx_modes.py
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import ROOT, Results, ms, row  # noqa: E402

from tests.conftest import load_script  # noqa: E402

MODES = ("float32", "dynamic", "float16", "int8", "int16x8")


def workloads(models, folder):
    x32, y32 = models.patterns(180, seed=0)
    x48, _ = models.patterns(180, size=48, seed=1)
    x64, _ = models.patterns(180, size=64, seed=2)
    f32, f48, f64 = (x.astype(np.float32) / 255 for x in (x32, x48, x64))
    return {
        "classifier": (models.fit_head(models.classifier(), f32[:120], y32[:120], 4), None, f32),
        "dynamic": (models.fit_head(models.dynamic_classifier(), f32[:120], y32[:120], 4), ["1,3,48,48"], f48),
        "two_outputs": (models.two_outputs(), None, f32),
        "segmenter": (models.segmenter(), None, f64),
    }


def signature_io(content: bytes):
    """(runner for float inputs → float outputs by name, timed invoke) of a .tflite."""
    from edgekit.conversion.tflite_model import TFLiteModel

    interpreter = TFLiteModel(content).interpreter
    runner = interpreter.get_signature_runner()
    inputs, outputs = runner.get_input_details(), runner.get_output_details()

    def run(feed: dict) -> dict:
        moved = {}
        for key, value in feed.items():
            scale, zero = inputs[key]["quantization"]
            dtype = inputs[key]["dtype"]
            moved[key] = (np.round(value / scale + zero) if scale else value).astype(dtype)
        got = runner(**moved)
        result = {}
        for key, value in got.items():
            scale, zero = outputs[key]["quantization"]
            result[key] = (value.astype(np.float32) - zero) * scale if scale else value.astype(np.float32)
        return result

    timed = TFLiteModel(content)  # its own interpreter: the runner's outputs hold on to the first one's buffers
    timed.set_zeros()
    return run, timed.interpreter.invoke


def main() -> int:
    from edgekit.conversion.onnx_model import load_onnx
    from edgekit.conversion.quantize import convert_saved_model
    from edgekit.runtime.timing import time_invokes

    models = load_script(ROOT / "samples" / "onnx" / "models.py", "onnx_sample_models")
    results = Results("onnx_modes")
    folder = ROOT / "build" / "bench" / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (proto, shapes, x) in workloads(models, folder).items():
        model = load_onnx(models.save(proto, folder / f"test-{name}.onnx"), shapes)
        try:
            in_key = model.signature_inputs[0]
            calibration, check = x[:120], x[120:]
            reference = model.predict({model.inputs[0].name: check})
            for mode in MODES:
                content = convert_saved_model(model.saved_model_path, mode, calibration)
                run, invoke = signature_io(content)
                got = [run({in_key: sample[None]}) for sample in check]
                fidelity = {}
                for tensor, key, expected in zip(model.outputs, model.signature_outputs, reference):
                    out = np.concatenate([g[key] for g in got]).reshape(len(check), -1).astype(np.float64)
                    ref = expected.reshape(len(check), -1).astype(np.float64)
                    cosine = (out * ref).sum(1) / np.maximum(
                        np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1), 1e-30
                    )
                    fidelity[tensor.name] = {"cosine": round(float(cosine.mean()), 5)}
                    if name in ("classifier", "dynamic"):
                        fidelity[tensor.name]["top1"] = round(float(np.mean(out.argmax(1) == ref.argmax(1))), 3)
                _, timings = time_invokes(invoke, warmup=5, repeat=100)
                p50 = float(np.median(timings)) / 1e6
                text = ", ".join(f"{k} " + " ".join(f"{m} {v}" for m, v in f.items()) for k, f in fidelity.items())
                results.add(row("12", "size, fidelity, p50", f"{name} {mode}", 1, ms(p50),
                                f"{len(content)} bytes; vs {model.reference}: {text}", None, "-", None,
                                bytes=len(content), fidelity=fidelity, p50_ms=p50))  # fmt: skip
        finally:
            model.workdir.close()
    results.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
