"""ONNX model file → `OnnxModel`, what `load.py` makes the SourceModel of: the float SavedModel every
quantization mode is converted from (made by onnx2tf, see onnx_export.py), and onnxruntime on the
original `.onnx` as the reference the fidelity checks compare with. Names, shapes and layout stay the
ONNX model's own (NCHW).

The SavedModel lives in a private temporary folder owned by `workdir` (an `OnnxWorkdir`, the
SourceModel's `cleanup`): `with source.cleanup:` removes it when the conversion is done; otherwise it
goes when the last reference to it does, or at exit.

This module does not import `load.py` (which dispatches `.onnx` here): no import cycle."""

from __future__ import annotations

import dataclasses
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit.bundle import sha256_file
from edgekit.conversion.onnx_export import (
    CONVERTER,
    LAYOUT,
    converter_version,
    edge_layouts,
    known_ops,
    output_layouts,
    run_onnx2tf,
    simplify,
    write_saved_model,
)
from edgekit.conversion.onnx_graph import (
    INSTALL_HINT,
    OnnxTensor,
    check_convertible,
    fixed_shapes,
    graph_tensors,
    import_onnx,
    parse_input_shapes,
    prepared_for_conversion,
    read_model,
)
from edgekit.errors import ConversionError, InputError

# The float SavedModel must reproduce onnxruntime before anything is quantized from it; a layout
# mistake gives a cosine near 0, float rounding one above 0.9999.
FLOAT_MIN_COSINE = 0.999


class OnnxWorkdir:
    """A private temporary folder removed on `close()`, on leaving `with`, when garbage-collected, or at exit."""

    def __init__(self) -> None:
        import shutil
        import tempfile

        from edgekit.bundle.files import signals_held

        with signals_held():
            self.path = Path(tempfile.mkdtemp(prefix="edgekit-onnx-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> OnnxWorkdir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX model ready to convert: `saved_model_path` for the converter, onnxruntime for `predict`;
    inputs and outputs in ONNX order, with their ONNX names and fixed shapes."""

    path: Path
    sha256: str
    inputs: tuple[OnnxTensor, ...]
    outputs: tuple[OnnxTensor, ...]
    saved_model_path: Path
    workdir: OnnxWorkdir
    runner: OnnxRunner
    signature_inputs: tuple[str, ...]  # the SavedModel's (and the .tflite signature's) names for them
    signature_outputs: tuple[str, ...]
    converter: str
    layout: str = LAYOUT

    @property
    def reference(self) -> str:
        """What the fidelity checks compare with: `onnxruntime X.Y`."""
        return self.runner.version

    def predict(self, batch: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Every output (ONNX order, float32) for a batch of every input, by onnxruntime."""
        return self.runner.run(batch)

    def predict_first(self, batch: np.ndarray) -> np.ndarray:
        """The first output for a batch of the first input (one-input models)."""
        return self.runner.run({self.inputs[0].name: batch})[0]

    def to_dict(self) -> dict[str, Any]:
        """What the manifest's `source` adds for an ONNX model."""
        return {"format": "onnx", "layout": self.layout, "reference": self.reference, "converter": self.converter}


class OnnxRunner:
    """onnxruntime on the original `.onnx`, in slices of the model's batch size (fixed or 1 per call)."""

    def __init__(self, path: Path, inputs: Sequence[OnnxTensor], shapes: Mapping[str, Sequence[int]]):
        try:
            import onnxruntime
        except ImportError:
            raise InputError(f"ONNX models are checked with onnxruntime: {INSTALL_HINT}") from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InputError(f"{path}: onnxruntime cannot load it ({' '.join(str(exc).split())[:240]})") from None
        self.version = f"onnxruntime {'.'.join(onnxruntime.__version__.split('.')[:2])}"
        self.names = [t.name for t in inputs]
        # A dynamic batch takes the whole slice at once; a fixed one takes that many samples per run.
        self.step = {t.name: (shapes[t.name][0] if t.shape and t.shape[0] is not None else None) for t in inputs}

    def run(self, batch: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        count = len(next(iter(batch.values())))
        step = min((s for s in self.step.values() if s), default=min(count, 32)) or 1
        parts: list[list[np.ndarray]] = []
        for start in range(0, count, step):
            feed = {n: np.ascontiguousarray(batch[n][start : start + step], dtype=np.float32) for n in self.names}
            parts.append(self.session.run(None, feed))
        return [np.concatenate([p[i] for p in parts]).astype(np.float32) for i in range(len(parts[0]))]


def load_onnx(
    path: str | os.PathLike[str],
    input_shapes: Mapping[str, Sequence[int]] | Sequence[str] | None = None,
    verbose: bool = False,
) -> OnnxModel:
    """An ONNX model ready to convert: checked (ops, data types, dynamic dimensions), converted to a
    float SavedModel with its ONNX layout at the edges, and checked against onnxruntime once.

    `input_shapes` fixes dynamic dimensions: name → shape, or `--input-shape` strings."""
    path = Path(path)
    verbose = verbose or bool(os.environ.get("EDGEKIT_DEBUG"))
    import_onnx()
    model = read_model(path)
    inputs, outputs = graph_tensors(model)
    if not inputs or not outputs:
        raise InputError(f"{path}: the ONNX graph has no inputs or no outputs")
    check_convertible(model, path, known_ops(), converter_version())
    shapes = fixed_shapes(inputs, parse_input_shapes(input_shapes), path)
    runner = OnnxRunner(path, inputs, shapes)
    probe = {n: np.random.default_rng(0).standard_normal(shapes[n]).astype(np.float32) for n in shapes}
    reference = runner.run(probe)

    workdir = OnnxWorkdir()
    try:
        copy = workdir.path / "model.onnx"  # onnx2tf rewrites its input: never the user's file
        onnx = import_onnx()
        prepared = prepared_for_conversion(model, shapes)
        onnx.save(prepared, str(workdir.path / "prepared.onnx"))
        simplify(workdir.path / "prepared.onnx", copy, shapes, verbose)
        node_ops = {n.name: n.op_type for n in prepared.graph.node}
        keras_model = run_onnx2tf(copy, shapes, node_ops, verbose)
        in_layouts = edge_layouts(keras_model, inputs, shapes)
        out_layouts = output_layouts(keras_model, outputs, [r.shape for r in reference])
        saved = workdir.path / "saved_model"
        in_keys, out_keys = write_saved_model(
            keras_model, saved, inputs, shapes, outputs, in_layouts, out_layouts, verbose
        )
        check_float_outputs(saved, in_keys, out_keys, probe, reference, outputs, path)
    except BaseException:
        workdir.close()
        raise

    return OnnxModel(
        path=path,
        sha256=sha256_file(path),
        inputs=tuple(dataclasses.replace(t, shape=tuple(shapes[t.name])) for t in inputs),
        outputs=tuple(dataclasses.replace(t, shape=tuple(r.shape), dim_names=()) for t, r in zip(outputs, reference)),
        saved_model_path=saved,
        workdir=workdir,
        runner=runner,
        signature_inputs=in_keys,
        signature_outputs=out_keys,
        converter=converter_version(),
    )


def check_float_outputs(
    saved: Path,
    in_keys: Sequence[str],
    out_keys: Sequence[str],
    probe: Mapping[str, np.ndarray],
    reference: Sequence[np.ndarray],
    outputs: Sequence[OnnxTensor],
    path: Path,
) -> None:
    """The SavedModel against onnxruntime on one input: same shapes, and values that agree."""
    from edgekit.conversion.quiet import import_tensorflow

    tf = import_tensorflow()
    serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
    results = serve(**{key: tf.constant(x) for key, x in zip(in_keys, probe.values())})
    for tensor, key, expected in zip(outputs, out_keys, reference):
        got = results[key].numpy()
        if got.shape != expected.shape:
            raise ConversionError(
                f"{path}: output {tensor.name!r} came out {got.shape}, onnxruntime gives {expected.shape}"
            )
        a, b = got.reshape(-1).astype(np.float64), expected.reshape(-1).astype(np.float64)
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        cosine = float(a @ b / norm) if norm > 0 else float(np.allclose(a, b, atol=1e-4))
        if not cosine >= FLOAT_MIN_COSINE:
            raise ConversionError(
                f"{path}: {CONVERTER}'s float model disagrees with onnxruntime on output {tensor.name!r} "
                f"(cosine {cosine:.4f}); nothing converted"
            )
