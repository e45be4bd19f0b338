"""12. Is converting an ONNX model worth it? The edgekit int8 bundle against what a PyTorch user would run
instead: onnxruntime on the original float `.onnx`, and onnxruntime's own static int8 quantization
(`quantize_static`, QDQ, per-channel int8 weights and activations, the same calibration images).

Two ONNX models built here with onnx.helper (samples/onnx/models.py, no download): MobileNetV2's
architecture at 224 (random trunk, classifier head fitted by least squares so its scores are decisive)
and a YOLO-style detector at 320 (boxes in pixels and class scores sharing one [1, 84, 2100] output).
Calibration and evaluation inputs are crops of scikit-learn's two sample photos.

Latency: p50 of each runner's call, the three measured in alternating bursts in one run
(edgekit.runtime.timing.time_interleaved), same thread count, with an A/A control (a second edgekit
interpreter) beside them. edgekit's call is the interpreter's invoke(); onnxruntime's is session.run()
with its input copy (a few µs at these sizes). Agreement with onnxruntime float on the evaluation
inputs is reported beside the speed. The cost of keeping NCHW at the .tflite's edges is measured
against the same int8 model converted with onnx2tf's native NHWC edges.

Usage: python benchmarks/onnx_vs_onnxruntime.py [--seconds S] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import BUILD, ROOT, Results, ms, row  # noqa: E402

from tests.conftest import load_script  # noqa: E402

MODELS = {"mobilenet_v2": 224, "yolo_detector": 320}
CALIBRATION, EVALUATION = 64, 32


def photos(count: int, size: int, seed: int) -> np.ndarray:
    """uint8 NCHW crops of scikit-learn's sample photos at `size`."""
    from PIL import Image

    build = load_script(ROOT / "samples" / "mobilenet" / "build.py", "mobilenet_build")
    crops = build.photo_crops(count, seed=seed)
    if size != crops.shape[1]:
        crops = np.stack([np.asarray(Image.fromarray(c).resize((size, size), Image.BILINEAR)) for c in crops])
    return crops.transpose(0, 3, 1, 2).copy()


def build_model(name: str, size: int, folder: Path) -> dict:
    models = load_script(ROOT / "samples" / "onnx" / "models.py", "onnx_sample_models")
    model = getattr(models, name)(size=size)
    if name == "mobilenet_v2":
        x, y = models.patterns(120, size=size, seed=0)
        model = models.fit_head(model, x.astype(np.float32) / 255, y, 1000)
    calibration, evaluation = photos(CALIBRATION, size, 0), photos(EVALUATION, size, 1)
    np.savez(folder / f"{name}-calibration.npz", x=calibration)
    return {
        "onnx": models.save(model, folder / f"{name}.onnx"),
        "calibration": folder / f"{name}-calibration.npz",
        "calibration_x": calibration.astype(np.float32) / 255,
        "eval_x": evaluation.astype(np.float32) / 255,
    }


def edgekit_int8(workload: dict, out: Path) -> bytes:
    from edgekit.conversion.pipeline import convert

    # The detector's boxes (pixels) and scores (0-1) share one output: kept float, or int8 rounds the scores away.
    float_outputs = ["output0"] if "yolo" in workload["onnx"].stem else []
    report = convert(workload["onnx"], targets=["x86_64"], quantization="int8", calibration=workload["calibration"],
                     out=out, allow_degraded=True, force=True, float_outputs=float_outputs)  # fmt: skip
    return (Path(report.bundles[0].path) / "model.tflite").read_bytes()


def nhwc_int8(workload: dict) -> bytes:
    """The same int8 model with onnx2tf's own NHWC edges (no edge transposes): what they cost."""
    from edgekit.conversion.onnx_export import EdgeLayout, run_onnx2tf, simplify, write_saved_model
    from edgekit.conversion.onnx_graph import graph_tensors, read_model
    from edgekit.conversion.quantize import convert_saved_model

    model = read_model(workload["onnx"])
    inputs, outputs = graph_tensors(model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shapes = {inputs[0].name: inputs[0].shape}
        simplify(workload["onnx"], folder / "model.onnx", shapes)
        keras_model = run_onnx2tf(folder / "model.onnx", {}, {}, False)  # onnx2tf's defaults: NHWC inside and out
        nhwc = {inputs[0].name: tuple(int(d) for d in keras_model.inputs[0].shape)}
        same = [EdgeLayout(t.name, None) for t in outputs]
        write_saved_model(
            keras_model, folder / "saved", inputs, nhwc, outputs, [EdgeLayout(inputs[0].name, None)], same
        )
        calibration = workload["calibration_x"].transpose(0, 2, 3, 1)
        return convert_saved_model(folder / "saved", "int8", calibration)


def onnxruntime_int8(workload: dict, folder: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, x: np.ndarray):
            self.items = iter([{"images": sample[None]} for sample in x])

        def get_next(self):
            return next(self.items, None)

    target = folder / (workload["onnx"].stem + "-qdq-int8.onnx")
    quantize_static(str(workload["onnx"]), str(target), Reader(workload["calibration_x"]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)  # fmt: skip
    return target


class TFLiteRunner:
    def __init__(self, content: bytes, threads: int):
        from edgekit.conversion.tflite_model import TFLiteModel

        self.model = TFLiteModel(content, threads=threads)

    def outputs(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def timed(self, sample: np.ndarray):
        from edgekit.runtime.preprocess import quantize

        interpreter = self.model.interpreter
        index = interpreter.get_input_details()[0]["index"]
        interpreter.set_tensor(index, quantize(sample[None], self.model.input))
        return interpreter.invoke


class OrtRunner:
    def __init__(self, path: Path, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def outputs(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.session.run(None, {"images": s[None]})[0] for s in x])

    def timed(self, sample: np.ndarray):
        feed = {"images": sample[None]}
        return lambda: self.session.run(None, feed)


def agreement(name: str, got: np.ndarray, reference: np.ndarray) -> dict:
    """How close outputs are to onnxruntime float: cosine, and top-1 agreement (classifier) or, for the
    detector, cosine of boxes and of scores apart and agreement of the best anchor and its class."""

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
        return float(np.mean((a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)))

    if name == "mobilenet_v2":
        return {
            "cosine": round(cosine(got, reference), 5),
            "top1": float(np.mean(got.argmax(1) == reference.argmax(1))),
        }
    best = lambda out: out[:, 4:].max(1).argmax(1)  # noqa: E731 (anchor with the highest class score)
    anchors = best(reference)
    classes = lambda out, a: out[np.arange(len(out)), 4:, a].argmax(1)  # noqa: E731
    return {
        "boxes_cosine": round(cosine(got[:, :4], reference[:, :4]), 5),
        "scores_cosine": round(cosine(got[:, 4:], reference[:, 4:]), 5),
        "best_anchor": float(np.mean(best(got) == anchors)),
        "best_class": float(np.mean(classes(got, anchors) == classes(reference, anchors))),
        "max_score_error": round(float(np.abs(got[:, 4:] - reference[:, 4:]).max()), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="timing per model and thread count")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--models", default=",".join(MODELS), help="which of: " + ", ".join(MODELS))
    args = parser.parse_args(argv)
    from edgekit.runtime.timing import time_interleaved

    results = Results("onnx_vs_onnxruntime")
    folder = BUILD / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in ((n, MODELS[n]) for n in args.models.split(",")):
        workload = build_model(name, size, folder)
        content = edgekit_int8(workload, folder / "bundles")
        native = nhwc_int8(workload)
        qdq = onnxruntime_int8(workload, folder)
        x = workload["eval_x"]
        reference = OrtRunner(workload["onnx"], 1).outputs(x)
        quality = {
            "edgekit int8": agreement(name, TFLiteRunner(content, 1).outputs(x), reference),
            "onnxruntime int8": agreement(name, OrtRunner(qdq, 1).outputs(x), reference),
        }
        results.notes.append(f"{name}: agreement with onnxruntime float on {len(x)} photo crops: {quality}")
        print(f"[onnx_vs_onnxruntime] {name} agreement: {quality}", flush=True)
        for threads in (int(t) for t in args.threads.split(",")):
            runners = {
                "edgekit int8": TFLiteRunner(content, threads),
                "edgekit int8 (A/A)": TFLiteRunner(content, threads),
                "edgekit int8, NHWC edges": TFLiteRunner(native, threads),
                "onnxruntime float": OrtRunner(workload["onnx"], threads),
                "onnxruntime int8 QDQ": OrtRunner(qdq, threads),
            }
            sample = x[0]
            invokes = [r.timed(sample.transpose(1, 2, 0) if "NHWC" in key else sample) for key, r in runners.items()]
            timings = time_interleaved(invokes, args.seconds)
            p50 = {key: float(np.median(t)) / 1e6 for key, t in zip(runners, timings)}
            mine = p50["edgekit int8"]
            for other in (
                "edgekit int8 (A/A)",
                "edgekit int8, NHWC edges",
                "onnxruntime float",
                "onnxruntime int8 QDQ",
            ):
                goal = "≈ 1 (control)" if "A/A" in other else "≈ 1 (edge cost)" if "NHWC" in other else "< 1"
                met = None if "A/A" in other or "NHWC" in other else mine < p50[other]
                results.add(row("12", "p50", name, threads, ms(mine), f"{other} {ms(p50[other])}", mine / p50[other],
                                goal, met, p50_ms=p50, runs=[len(t) for t in timings], agreement=quality))  # fmt: skip
    results.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
