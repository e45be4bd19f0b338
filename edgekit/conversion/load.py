"""Model file → SourceModel: a Keras 3 model (`.keras`, or legacy `.h5`), a SavedModel folder, or an
existing `.tflite`, with its input/output signature; and `load_inputs`, the opening every conversion
(and `edgekit debug`) shares: the model, its input contract, the calibration and evaluation data.

Keras files are loaded in safe mode: a file that carries Python code (a `Lambda` layer's bytecode,
an arbitrary custom object) is refused unless the caller opts in with `unsafe=True` (`--unsafe-load`),
because loading it would run that code.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.bundle import sha256_file
from edgekit.bundle.model_file import check_tflite_file
from edgekit.conversion.contract import ModelInputs, TensorInfo, model_inputs
from edgekit.conversion.inputs import EVALUATION, Samples, batch_size, load_samples, take
from edgekit.conversion.quiet import import_keras, import_tensorflow, quiet_native_output
from edgekit.conversion.recipe import ConvertOptions
from edgekit.conversion.tflite_model import TFLiteModel
from edgekit.errors import InputError
from edgekit.runtime.interpreter import ops_details

PREDICT_BATCH = 32


@dataclass(frozen=True)
class SourceModel:
    """A loaded source model: its inputs and outputs (source names, source order), how to call it, and
    where it came from."""

    path: Path
    kind: str  # "keras", "h5", "saved_model", "tflite" or "onnx"
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    sha256: str
    keras_model: Any = None
    export_archive: Any = None  # Keras sources: the traced graph that both predicts and is exported
    predict_fn: Callable[[dict[str, np.ndarray]], list[np.ndarray]] | None = None
    tflite_content: bytes | None = None  # only for an existing .tflite
    quantization: str | None = None  # only for an existing .tflite: the mode it was converted with
    # The exported SavedModel's signature keys, one per input, in `inputs` order (what the converter's
    # representative dataset is keyed by); None: the input names themselves.
    export_names: tuple[str, ...] | None = None
    export_output_names: tuple[str, ...] | None = None  # the same for outputs; None: the output names
    saved_model_path: Path | None = None  # a SavedModel to convert (ONNX: made by onnx2tf)
    cleanup: Any = None  # a context manager: leaving it removes the source's temporary files (ONNX)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # more for the manifest's source (ONNX)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self.inputs[0].shape

    @property
    def output_shape(self) -> tuple[int | None, ...]:
        return self.outputs[0].shape

    @property
    def output_name(self) -> str:
        return self.outputs[0].name

    @property
    def signature_keys(self) -> tuple[str, ...]:
        return self.export_names or tuple(t.name for t in self.inputs)

    @property
    def output_keys(self) -> tuple[str, ...]:
        return self.export_output_names or tuple(t.name for t in self.outputs)

    def signature_batch(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs by source name → by the exported signature's keys (what the converter is fed)."""
        return {key: batch[t.name] for key, t in zip(self.signature_keys, self.inputs)}

    def predict(self, batch: dict[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Float outputs of the source model (one array per output, source order) for float32 inputs
        by input name, run in slices to bound memory. A bare array feeds a one-input model."""
        assert self.predict_fn is not None
        if isinstance(batch, np.ndarray):
            batch = {self.inputs[0].name: batch}
        count = batch_size(batch)
        if count == 0:
            raise InputError(f"{self.path}: no samples to run")
        parts = [self.predict_fn(take(batch, slice(i, i + PREDICT_BATCH))) for i in range(0, count, PREDICT_BATCH)]
        return [np.concatenate([np.asarray(p[k], dtype=np.float32) for p in parts]) for k in range(len(self.outputs))]

    def to_dict(self) -> dict[str, Any]:
        data = {"file": self.path.name, "kind": self.kind, "sha256": self.sha256}
        if self.quantization is not None:
            data["quantization"] = self.quantization
        return {**data, **self.details}


@dataclass(frozen=True)
class Loaded:
    """A model ready to convert: the source, its input contract, and the user's data as model inputs."""

    source: SourceModel
    inputs: ModelInputs
    calibration: dict[str, np.ndarray] | None  # --calibration, preprocessed once, by input name
    evaluation: Samples | None  # --eval-data


def load_inputs(model: str | os.PathLike[str], recipe: ConvertOptions) -> Loaded:
    """The model, its input contract (preprocessing, classes, labels, task) and the calibration and
    evaluation data, each loaded and preprocessed once."""
    source = load_model(model, unsafe=recipe.unsafe_load, input_shapes=recipe.input_shape, verbose=recipe.verbose)
    inputs = model_inputs(source.inputs, source.outputs, recipe.mean, recipe.std, recipe.labels, recipe.task)
    calibration = None
    if recipe.calibration is not None:
        calibration = load_samples(recipe.calibration, inputs, recipe.calibration_size).x
    evaluation = None
    if recipe.eval_data is not None:
        evaluation = load_samples(recipe.eval_data, inputs, recipe.eval_size, EVALUATION)
    return Loaded(source, inputs, calibration, evaluation)


def model_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "saved_model"
        raise InputError(f"{path}: folder is not a SavedModel (no saved_model.pb)")
    suffix = path.suffix.lower()
    kinds = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite", ".onnx": "onnx"}
    if suffix not in kinds:
        raise InputError(f"{path}: unknown model format (expected .keras, a SavedModel folder, .h5, .tflite or .onnx)")
    return kinds[suffix]


def folder_sha256(folder: Path) -> str:
    """A SavedModel's fingerprint: SHA-256 over its files' relative paths and contents."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def load_model(
    path: str | os.PathLike[str], unsafe: bool = False, input_shapes: Any = None, verbose: bool = False
) -> SourceModel:
    """Load a model file for conversion; Keras files are loaded in safe mode unless `unsafe`; `input_shapes`
    fixes an ONNX model's dynamic dimensions."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    kind = model_kind(source)
    if kind in ("keras", "h5"):
        return _load_keras(source, kind, unsafe)
    if kind == "saved_model":
        return _load_saved_model(source)
    if kind == "onnx":
        return _load_onnx(source, input_shapes, verbose)
    return _load_tflite(source)


def check_model_file(path: Path) -> None:
    """Refuse a file that is not a model edgekit can read, cheaply and before any other complaint:
    an unknown extension, a .keras that is not a zip, an .h5 without the HDF5 signature."""
    kind = model_kind(path)
    if kind in ("keras", "h5"):
        _check_keras_container(path, kind)
    elif kind == "tflite":
        check_tflite_file(path)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _check_keras_container(path: Path, kind: str) -> None:
    """A .keras file is a zip archive, an .h5 an HDF5 file: say so plainly, instead of Keras's
    "File not found" for a file that exists but is something else."""
    import zipfile

    try:
        if kind == "keras" and not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not a Keras .keras file (a .keras file is a zip archive)")
        if kind == "h5":
            with open(path, "rb") as handle:
                if handle.read(8) != HDF5_SIGNATURE:
                    raise InputError(f"{path}: not a Keras .h5 file (no HDF5 signature)")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _load_keras(path: Path, kind: str, unsafe: bool) -> SourceModel:
    _check_keras_container(path, kind)
    keras = import_keras()
    try:
        with quiet_native_output():
            model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # Keras raises many types for bad files
        message = " ".join(str(exc).split())
        if not unsafe and ("safe_mode" in message or "arbitrary code" in message):
            raise InputError(
                f"{path}: refused in safe mode: the file carries Python code (e.g. a Lambda layer) that loading "
                "would run; if you trust the file, pass --unsafe-load"
            ) from None
        raise InputError(f"{path}: cannot load Keras model ({type(exc).__name__}: {message[:300]})") from None
    if not hasattr(model, "inputs") or not model.inputs:
        raise InputError(f"{path}: the model has no defined inputs (build or call it once before saving)")
    source = SourceModel(
        path=path,
        kind=kind,
        inputs=tuple(
            TensorInfo(name, tuple(t.shape), dtype_name(t.dtype)) for name, t in zip(input_names(model), model.inputs)
        ),
        outputs=tuple(
            TensorInfo(name, tuple(t.shape), dtype_name(t.dtype)) for name, t in zip(output_names(model), model.outputs)
        ),
        sha256=sha256_file(path),
    )
    return with_keras_model(source, model)


def dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def with_keras_model(source: SourceModel, model: Any) -> SourceModel:
    """`source` running `model` (a loaded or a pruned Keras model) through one traced graph.

    The reference outputs run in graph mode: eager calls keep every activation of a batch resident
    (MobileNetV2-224, 32 samples: +2.7 GB peak against +0.3 GB traced). The same trace is what the
    SavedModel export writes, so tracing for the checks costs the export nothing.

    The endpoint's inputs and outputs are keyed `input_000`, `output_000`, ... in the Keras model's
    order: every converted model is put in that order by its signature (tflite_model.in_source_order)."""
    keras = import_keras()
    tf = import_tensorflow()
    archive = keras.export.ExportArchive()
    archive.track(model)
    keys = tuple(f"input_{i:03d}" for i in range(len(model.inputs)))
    signature = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=key) for key, t in zip(keys, model.inputs)]
    names = output_names(model)

    def serve(*tensors: Any) -> dict[str, Any]:
        outputs = model(tensors[0] if len(tensors) == 1 else list(tensors), training=False)
        if isinstance(outputs, dict):
            outputs = [outputs[name] for name in names]
        elif not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return {f"output_{i:03d}": out for i, out in enumerate(outputs)}

    endpoint = archive.add_endpoint("serve", serve, signature)
    order = [f"output_{i:03d}" for i in range(len(model.outputs))]

    def predict(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = endpoint(*[tf.constant(batch[t.name]) for t in source.inputs])
        return [result[key].numpy() for key in order]

    return dataclasses.replace(
        source,
        keras_model=model,
        export_archive=archive,
        predict_fn=predict,
        export_names=keys,
        export_output_names=tuple(order),
    )


def input_names(model: Any) -> list[str]:
    """The Keras model's input names (its Input layers'), in its order."""
    names = [str(getattr(t, "name", "") or f"input_{i}") for i, t in enumerate(model.inputs)]
    return unique(names, "input")


def output_names(model: Any) -> list[str]:
    """The Keras layers that produce the model's outputs, the names users know them by."""
    names = []
    for i, tensor in enumerate(model.outputs):
        history = getattr(tensor, "_keras_history", None)
        operation = getattr(history, "operation", None)
        names.append(str(getattr(operation, "name", "") or f"output_{i}"))
    return unique(names, "output")


def unique(names: list[str], kind: str) -> list[str]:
    """Names as given, with a suffix where two would collide (a layer with two outputs)."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        result.append(name if count == 0 else f"{name}_{count}")
    return result


def output_layer_name(model: Any) -> str:
    """The Keras layer that produces the model's (first) output."""
    return output_names(model)[0]


def _load_saved_model(path: Path) -> SourceModel:
    tf = import_tensorflow()
    try:
        with quiet_native_output():
            loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise InputError(f"{path}: cannot load SavedModel ({' '.join(str(exc).split())[:300]})") from None
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise InputError(f"{path}: SavedModel has no 'serving_default' signature")
    _, kwargs = signature.structured_input_signature
    outputs = signature.structured_outputs
    # A signature's tensors are keyed, not ordered: this model's order is its keys' sorted order.
    input_keys = sorted(kwargs)
    output_keys = sorted(outputs)

    def predict(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = signature(**{key: tf.constant(batch[key]) for key in input_keys})
        return [result[key].numpy() for key in output_keys]

    return SourceModel(
        path=path,
        kind="saved_model",
        inputs=tuple(TensorInfo(k, tuple(kwargs[k].shape.as_list()), kwargs[k].dtype.name) for k in input_keys),
        outputs=tuple(TensorInfo(k, tuple(outputs[k].shape.as_list()), outputs[k].dtype.name) for k in output_keys),
        sha256=folder_sha256(path),
        predict_fn=predict,
        keras_model=loaded,  # keep the object alive: the signature refers to it
    )


def _load_onnx(path: Path, input_shapes: Any, verbose: bool) -> SourceModel:
    from edgekit.conversion.onnx_model import load_onnx

    model = load_onnx(path, input_shapes, verbose)
    return SourceModel(
        path,
        "onnx",
        tuple(TensorInfo(t.name, t.shape) for t in model.inputs),
        tuple(TensorInfo(t.name, t.shape) for t in model.outputs),
        model.sha256,
        predict_fn=model.predict,
        export_names=model.signature_inputs,
        export_output_names=model.signature_outputs,
        saved_model_path=model.saved_model_path,
        cleanup=model.workdir,
        details=model.to_dict(),
    )


def _load_tflite(path: Path) -> SourceModel:
    """An already-converted model: re-bundled as it is, checked with the interpreter `edgekit run` uses."""
    content = path.read_bytes()
    model = TFLiteModel(content, where=str(path))
    names_in, names_out = model.tensor_names()
    return SourceModel(
        path=path,
        kind="tflite",
        inputs=tuple(TensorInfo(n, t.shape, t.dtype) for n, t in zip(names_in, model.inputs)),
        outputs=tuple(TensorInfo(n, t.shape, t.dtype) for n, t in zip(names_out, model.outputs)),
        sha256=sha256_file(path),
        predict_fn=model.predict_batch,
        tflite_content=content,
        quantization=tflite_quantization(model),
    )


def tflite_quantization(model: Any) -> str:
    """Which edgekit mode a `.tflite` was converted with, read from its tensors: activations in int16 →
    int16x8, in int8 → int8; float activations with float16 weights → float16, with int8 weights →
    dynamic; else float32."""
    interpreter = model.interpreter
    ops = ops_details(interpreter)
    details = {int(d["index"]): np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}
    produced = {int(i) for op in ops for i in op["outputs"]}
    consumed = {int(i) for op in ops for i in op["inputs"] if int(i) >= 0}
    activations = {details[i] for i in produced if i in details}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    weights = {details[i] for i in consumed - produced - graph_inputs if i in details}
    if "int16" in activations:
        return "int16x8"
    if activations & {"int8", "uint8"}:
        return "int8"
    if "float16" in weights:
        return "float16"
    if weights & {"int8", "uint8"}:
        return "dynamic"
    return "float32"
