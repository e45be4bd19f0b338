"""8. Detection decoding + NMS cost against the invoke it follows, on a YOLOv8n-sized head.

Workload (built here once into build/bench/decode_cost/, nothing downloaded): a Keras 3 detector with a
320x320x3 input and a YOLOv8n-shaped head, one output [1, 84, 2100] (4 box + 80 class values for each of
the 40x40 + 20x20 + 10x10 cells, the Ultralytics export layout), random weights, its class scores
starting low as a trained detector's are for empty cells (a 1 % prior); converted to int8 (int8 input
and output, as `edgekit convert -q int8` makes them). About 0.32 GMACs: lighter than YOLOv8n (~1.1
GMACs at 320), so its invoke is shorter and the ratio errs on the high side.

Timed, interleaved in bursts in one process (edgekit.runtime.timing.time_interleaved), per round:
  invoke       interpreter.invoke() on a fixed input
  invoke (A/A) the same again: the control, its ratio to the first should be ~1
  decode       edgekit.runtime.detect.detections() (score threshold 0.25, class-wise NMS at IoU 0.45,
               at most 100 detections, boxes scaled to a 1280x720 original) on the dequantized output:
                 quiet   the model's own output (few or no cells above the threshold)
                 busy    100 objects of 20 classes, each found by 10 overlapping cells: 1000 candidates
                 flooded every one of the 2100 cells above the threshold, each its own object (the worst
                         case: NMS keeps the limit of 100, each kept box scanning the rest)
Each ratio is the median of per-round ratios of medians (decode / invoke); goal: ≤ 0.10.
The output's dequantization (done for every task) is timed beside it, for reference.

Usage: python benchmarks/decode_cost.py [--rounds N] [--seconds S] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from workloads import BUILD, Results, ms, paired_ratio, row  # noqa: E402

from edgekit.native_output import quiet_native_output  # noqa: E402

WORKLOAD = BUILD / "decode_cost"
MODEL = WORKLOAD / "yolo_head_320-int8.tflite"
SIZE = 320
CLASSES = 80
CELLS = (40, 20, 10)  # strides 8, 16, 32
CANDIDATES = sum(c * c for c in CELLS)  # 2100
GOAL = 0.10


def build_model():
    from edgekit.conversion.quiet import import_keras

    keras = import_keras()
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = inputs
    features = []
    for filters, strides in ((16, 2), (32, 2), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", activation="relu")(x)
        if strides == 1:
            features.append(x)
    heads = []
    for index, feature in enumerate(features):
        box = layers.Conv2D(4, 1, activation="sigmoid", name=f"box{index}")(feature)  # normalized cx, cy, w, h
        scores = layers.Conv2D(CLASSES, 1, name=f"cls{index}", bias_initializer=keras.initializers.Constant(-4.6))
        head = layers.Concatenate()([box, layers.Activation("sigmoid")(scores(feature))])
        heads.append(layers.Reshape((-1, 4 + CLASSES))(head))
    output = layers.Permute((2, 1), name="output0")(layers.Concatenate(axis=1)(heads))
    return keras.Model(inputs, output)


def convert_int8(model) -> bytes:
    from edgekit.conversion.quiet import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.uniform(0, 1, (1, SIZE, SIZE, 3)).astype(np.float32)]

    saved = WORKLOAD / "saved_model"
    model.export(str(saved), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def workload() -> None:
    if MODEL.is_file():
        return
    WORKLOAD.mkdir(parents=True, exist_ok=True)
    print(f"[decode_cost] building {MODEL.relative_to(BUILD.parents[1])}", flush=True)
    with quiet_native_output():
        content = convert_int8(build_model())
    MODEL.with_suffix(".partial").write_bytes(content)
    os.replace(MODEL.with_suffix(".partial"), MODEL)


def busy(head: np.ndarray, rng: np.random.Generator, objects: int, per_object: int) -> np.ndarray:
    """The head with `objects` objects each seen by `per_object` overlapping cells (jittered boxes)."""
    out = head.copy()
    cells = rng.permutation(CANDIDATES)[: objects * per_object].reshape(objects, per_object)
    for cells_of, kind in zip(cells, rng.integers(0, 20, objects)):
        centre, size = rng.uniform(0.05, 0.95, 2), rng.uniform(0.02, 0.2, 2)
        jitter = rng.normal(0, 0.1, (per_object, 4)) * np.concatenate([size, size])
        out[0, :4, cells_of] = np.concatenate([centre, size]) + jitter
        out[0, 4 + kind, cells_of] = rng.uniform(0.3, 0.95, per_object)
    return out


def manifest():
    from edgekit.bundle import FileEntry, Manifest, Preprocess, TensorSpec

    return Manifest(
        name="yolo_head_320",
        created_by="benchmarks/decode_cost.py",
        target={},
        quantization="int8",
        inputs=(TensorSpec("images", (1, SIZE, SIZE, 3), "int8", 1 / 255, -128, Preprocess((SIZE, SIZE), "RGB")),),
        outputs=(TensorSpec("output0", (1, 4 + CLASSES, CANDIDATES), "float32"),),
        files={"model.tflite": FileEntry("0" * 64, 0)},
        task="detect",
        postprocess={"format": "yolo", "layout": "4+C,N", "coordinates": "normalized"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0, help="per round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    workload()
    from edgekit.runtime.detect import detections
    from edgekit.runtime.interpreter import find_runtime, load_interpreter, tensor_spec
    from edgekit.runtime.preprocess import dequantize
    from edgekit.runtime.timing import time_interleaved

    interpreter = load_interpreter(str(MODEL), args.threads, find_runtime())
    detail_in, detail_out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    out_spec = tensor_spec(detail_out)
    rng = np.random.default_rng(1)
    interpreter.set_tensor(detail_in["index"], rng.integers(-128, 128, detail_in["shape"], dtype=np.int8))
    interpreter.invoke()
    raw = interpreter.get_tensor(detail_out["index"])
    quiet = dequantize(raw, out_spec)
    heads = {"quiet": quiet, "busy": busy(quiet, rng, 100, 10), "flooded": busy(quiet, rng, CANDIDATES, 1)}
    meta = manifest()
    counts = {name: len(detections([head], meta, (1280, 720))) for name, head in heads.items()}
    candidates = {name: int((head[0, 4:].max(axis=0) >= 0.25).sum()) for name, head in heads.items()}
    invokes = [interpreter.invoke, interpreter.invoke]
    decodes = [lambda head=head: detections([head], meta, (1280, 720)) for head in heads.values()]
    dequantizing = [lambda: dequantize(raw, out_spec)]
    per_round = {name: [] for name in ["invoke", "invoke_aa", *heads, "dequantize"]}
    for _ in range(args.rounds):
        series = time_interleaved([*invokes, *decodes, *dequantizing], args.seconds, min_runs=20, burst=3)
        for name, timings in zip(per_round, series):
            per_round[name].append(float(np.median(timings)) / 1e6)
    results = Results("decode_cost")
    invoke = float(np.median(per_round["invoke"]))
    control = paired_ratio(per_round["invoke_aa"], per_round["invoke"])
    results.add(
        row(
            "8",
            "A/A control: invoke / the same invoke",
            "yolo_head_320-int8",
            args.threads,
            ms(float(np.median(per_round["invoke_aa"]))),
            f"invoke {ms(invoke)}",
            control["median"],
            "~1",
            None,
            ratio_p25=control["p25"],
            ratio_p75=control["p75"],
        )
    )
    for name in heads:
        ratio = paired_ratio(per_round[name], per_round["invoke"])
        decode = float(np.median(per_round[name]))
        results.add(
            row(
                "8",
                f"decode + NMS, {name} head ({candidates[name]} candidates → {counts[name]} detections) / invoke",
                "yolo_head_320-int8 [1, 84, 2100]",
                args.threads,
                ms(decode),
                f"invoke {ms(invoke)}",
                ratio["median"],
                f"≤ {GOAL:.2f}",
                ratio["median"] <= GOAL,
                decode_ms=decode,
                invoke_ms=invoke,
                ratio_p25=ratio["p25"],
                ratio_p75=ratio["p75"],
                candidates=candidates[name],
                detections=counts[name],
                dequantize_ms=float(np.median(per_round["dequantize"])),
                per_round_decode_ms=per_round[name],
                per_round_invoke_ms=per_round["invoke"],
                rounds=args.rounds,
            )
        )
    results.notes.append(
        "decode_cost: the detector is ~0.32 GMACs (YOLOv8n is ~1.1 GMACs at 320x320), so the invoke is "
        "shorter than YOLOv8n's and the decode ratios are upper bounds for it; dequantizing the int8 output "
        f"(done for every task) took {ms(float(np.median(per_round['dequantize'])))}, not counted in the decode."
    )
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
