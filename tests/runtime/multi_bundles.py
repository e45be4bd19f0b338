"""Bundles with several inputs and outputs, assembled here (not by `edgekit convert`): small TensorFlow
functions converted to float32 and int8 `.tflite`, written with a schema-2 manifest through
edgekit.bundle. Tests import TensorFlow to build them; the device half never does.

  two_inputs    inputs "image" [1,16,16,3] (RGB preprocess) and "side" [1,4]; outputs "scores" [1,5]
                (labels scores.txt) and "heat map/0" [1,16,16,1] (a name --save-outputs must sanitize)
  two_heads     input "image" [1,12,12,1] (greyscale); outputs "class" [1,6] and "box" [1,4]
  yolo          input "images" [1,32,32,3]; output "output0" [1,6,8], a YOLO-style head that says the same
                for every image (task detect, float32 only)

Every matmul has a bias, as Keras Dense layers do: an int8 FULLY_CONNECTED without one crashes
tflite-runtime 2.14 on aarch64 and armv7 (segfault in invoke; ai-edge-litert and x86 are fine).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgekit.bundle import MANIFEST_NAME, MODEL_NAME, Manifest, Preprocess, TensorSpec, file_entry

SCORES_LABELS = ["cat", "dog", "bird", "fish", "frog"]
_built: dict[str, dict] = {}  # one build per test session, whichever module asks first


def _two_inputs_function(tf):
    rng = np.random.default_rng(1)
    dense = tf.constant(rng.normal(0, 1, (7, 5)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.1, (5,)).astype(np.float32))
    kernel = tf.constant(rng.normal(0, 0.5, (3, 3, 3, 1)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.float32), tf.TensorSpec([1, 4], tf.float32)])
    def model(image, side):
        pooled = tf.reduce_mean(image, axis=[1, 2])
        scores = tf.nn.softmax(tf.matmul(tf.concat([pooled, side], axis=-1), dense) + bias)
        heat = tf.nn.relu(tf.nn.conv2d(image, kernel, strides=1, padding="SAME"))
        return {"scores": scores, "heat": heat}

    def samples():
        data = np.random.default_rng(2)
        for _ in range(16):
            yield [
                data.uniform(0, 1, (1, 16, 16, 3)).astype(np.float32),
                data.uniform(-1, 1, (1, 4)).astype(np.float32),
            ]

    return model, samples


def _two_heads_function(tf):
    rng = np.random.default_rng(3)
    kernel = tf.constant(rng.normal(0, 0.5, (3, 3, 1, 4)).astype(np.float32))
    classes = tf.constant(rng.normal(0, 1, (4, 6)).astype(np.float32))
    boxes = tf.constant(rng.normal(0, 1, (4, 4)).astype(np.float32))
    bias = tf.constant(rng.normal(0, 0.1, (10,)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 12, 12, 1], tf.float32)])
    def model(image):
        features = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(image, kernel, strides=1, padding="SAME")), axis=[1, 2])
        return {
            "class": tf.nn.softmax(tf.matmul(features, classes) + bias[:6]),
            "box": tf.sigmoid(tf.matmul(features, boxes) + bias[6:]),
        }

    def samples():
        data = np.random.default_rng(4)
        for _ in range(16):
            yield [data.uniform(0, 1, (1, 12, 12, 1)).astype(np.float32)]

    return model, samples


# A YOLO-style head [1, 4+C, N] that says the same whatever the image: centre x, centre y, width, height in
# input pixels (32x32), then the scores of C=2 classes, for N=8 candidates. Candidates 0 and 1 overlap
# (IoU 0.6, NMS keeps 0), 2 is the other class, the rest score below any threshold.
YOLO_HEAD = np.zeros((1, 6, 8), np.float32)
YOLO_HEAD[0, :, 0] = [16, 16, 8, 8, 0.9, 0.0]
YOLO_HEAD[0, :, 1] = [17, 16, 8, 8, 0.8, 0.0]
YOLO_HEAD[0, :, 2] = [8, 8, 4, 4, 0.0, 0.7]
YOLO_LABELS = ["square", "circle"]


def _yolo_function(tf):
    head = tf.constant(YOLO_HEAD)

    @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32)])
    def model(image):
        return {"output0": head + 0.0 * tf.reduce_mean(image)}

    return model, None


def convert(model, samples, mode: str) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    if mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def interpreter_specs(model_path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    from edgekit.runtime.interpreter import find_runtime, load_interpreter, tensor_spec

    interpreter = load_interpreter(str(model_path), 1, find_runtime())
    return (
        tuple(tensor_spec(d) for d in interpreter.get_input_details()),
        tuple(tensor_spec(d) for d in interpreter.get_output_details()),
    )


def write_bundle(
    folder: Path,
    content: bytes,
    mode: str,
    names: dict[tuple[int, ...], str],
    preprocess: dict[str, Preprocess],
    labels: dict[str, list[str]],
    task: str,
    postprocess: dict | None = None,
) -> Path:
    """A bundle folder: the model, labels files, and a manifest whose tensors carry the names given per
    shape (every tensor of these models has its own shape), in the interpreter's order."""
    folder.mkdir(parents=True)
    (folder / MODEL_NAME).write_bytes(content)
    inputs, outputs = interpreter_specs(folder / MODEL_NAME)
    label_files = {}
    for output, values in labels.items():
        label_files[output] = f"{output}.txt"
        (folder / label_files[output]).write_text("\n".join(values) + "\n", encoding="utf-8")

    def named(spec: TensorSpec, **extra) -> TensorSpec:
        return TensorSpec(names[spec.shape], spec.shape, spec.dtype, spec.scale, spec.zero_point, **extra)

    manifest = Manifest(
        name=folder.name,
        created_by="edgekit tests",
        target={"name": "x86_64", "arch": "x86_64", "threads": 1, "budget_ms": 1000.0},
        quantization=mode,
        inputs=tuple(named(s, preprocess=preprocess.get(names[s.shape])) for s in inputs),
        outputs=tuple(named(s, labels=label_files.get(names[s.shape])) for s in outputs),
        files={p.name: file_entry(p) for p in sorted(folder.iterdir())},
        task=task,
        postprocess=postprocess or {},
    )
    (folder / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return folder


def build(out: Path) -> dict:
    """{"two_inputs": {"float32": folder, "int8": folder}, "two_heads": {...}, "yolo": {"float32": folder}}."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    built: dict = {"dir": out}
    model, samples = _two_inputs_function(tf)
    built["two_inputs"] = {
        mode: write_bundle(
            out / f"two_inputs-{mode}",
            convert(model, samples, mode),
            mode,
            {(1, 16, 16, 3): "image", (1, 4): "side", (1, 5): "scores", (1, 16, 16, 1): "heat map/0"},
            {"image": Preprocess((16, 16), "RGB")},
            {"scores": SCORES_LABELS},
            "classify",
        )
        for mode in ("float32", "int8")
    }
    model, samples = _two_heads_function(tf)
    built["two_heads"] = {
        mode: write_bundle(
            out / f"two_heads-{mode}",
            convert(model, samples, mode),
            mode,
            {(1, 12, 12, 1): "image", (1, 6): "class", (1, 4): "box"},
            {"image": Preprocess((12, 12), "L")},
            {},
            "raw",
        )
        for mode in ("float32", "int8")
    }
    model, _ = _yolo_function(tf)
    built["yolo"] = {
        "float32": write_bundle(
            out / "yolo-float32",
            convert(model, None, "float32"),
            "float32",
            {(1, 32, 32, 3): "images", (1, 6, 8): "output0"},
            {"images": Preprocess((32, 32), "RGB")},
            {"output0": YOLO_LABELS},
            "detect",
            {"format": "yolo", "layout": "4+C,N", "classes": 2, "candidates": 8, "coordinates": "pixels"},
        )
    }
    return built


@pytest.fixture(scope="session")
def multi_bundles(tmp_path_factory) -> dict:
    if "bundles" not in _built:
        _built["bundles"] = build(tmp_path_factory.mktemp("multi-bundles"))
    return _built["bundles"]


def rewrite_manifest(bundle: Path, change) -> None:
    """Edit a bundle's manifest in place (`change` gets and returns its JSON data)."""
    path = bundle / MANIFEST_NAME
    path.write_text(json.dumps(change(json.loads(path.read_text())), indent=2), encoding="utf-8")


def sample_files(folder: Path) -> dict:
    """Input files for the two_inputs and two_heads bundles: images, .npy, a .npz per model."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    files = {}
    for i in range(2):
        path = folder / f"photo-{i}.png"
        Image.fromarray(rng.integers(0, 256, (20 + 4 * i, 30, 3), dtype=np.uint8), "RGB").save(path)
        files[f"photo-{i}"] = path
        grey = folder / f"grey-{i}.png"
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8), "L").save(grey)
        files[f"grey-{i}"] = grey
    files["side"] = folder / "side.npy"
    np.save(files["side"], np.array([[0.5, -0.25, 1.0, 0.0]], dtype=np.float32))
    files["npz"] = folder / "pair.npz"
    np.savez(
        files["npz"],
        image=rng.uniform(0, 1, (1, 16, 16, 3)).astype(np.float32),
        side=np.array([[0.5, -0.25, 1.0, 0.0]], dtype=np.float32),
    )
    return files
