"""Model file → SourceModel: a Keras 3 model or a SavedModel, with its input/output signature.

Supported now: Keras 3 `.keras` files and SavedModel folders. Legacy `.h5` and existing `.tflite`
files are recognised and get a clear message until their loaders land.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.bundle import sha256_file
from edgekit.conversion.quiet import import_keras, import_tensorflow, quiet_native_output
from edgekit.errors import InputError


@dataclass(frozen=True)
class SourceModel:
    """A loaded source model: how to call it, its input shape and where it came from."""

    path: Path
    kind: str  # "keras" or "saved_model"
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    sha256: str
    keras_model: Any = None
    predict_fn: Callable[[np.ndarray], np.ndarray] | None = None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Float outputs of the source model for a float32 batch."""
        assert self.predict_fn is not None
        return np.asarray(self.predict_fn(batch), dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path.name, "kind": self.kind, "sha256": self.sha256}


def model_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "saved_model"
        raise InputError(f"{path}: folder is not a SavedModel (no saved_model.pb)")
    suffix = path.suffix.lower()
    kinds = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite"}
    if suffix not in kinds:
        raise InputError(f"{path}: unknown model format (expected .keras, a SavedModel folder, .h5 or .tflite)")
    return kinds[suffix]


def folder_sha256(folder: Path) -> str:
    """A SavedModel's fingerprint: SHA-256 over its files' relative paths and contents."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def load_model(path: str | os.PathLike[str], unsafe: bool = False) -> SourceModel:
    """Load a model file for conversion; Keras files are loaded in safe mode unless `unsafe`."""
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    kind = model_kind(source)
    if kind == "keras":
        return _load_keras(source, unsafe)
    if kind == "saved_model":
        return _load_saved_model(source)
    raise InputError(f"{source}: {kind} models are not supported yet (use a .keras file or a SavedModel)")


def _load_keras(path: Path, unsafe: bool) -> SourceModel:
    keras = import_keras()
    try:
        with quiet_native_output():
            model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # Keras raises many types for bad files
        message = " ".join(str(exc).split())[:300]
        raise InputError(f"{path}: cannot load Keras model ({type(exc).__name__}: {message})") from None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(
            f"{path}: edgekit converts models with one input and one output "
            f"(this one has {len(model.inputs)} and {len(model.outputs)})"
        )

    def predict(batch: np.ndarray) -> np.ndarray:
        return model(batch, training=False).numpy()

    return SourceModel(
        path=path,
        kind="keras",
        input_shape=tuple(model.inputs[0].shape),
        output_shape=tuple(model.outputs[0].shape),
        sha256=sha256_file(path),
        keras_model=model,
        predict_fn=predict,
    )


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
    if len(kwargs) != 1 or len(outputs) != 1:
        raise InputError(f"{path}: edgekit converts models with one input and one output")
    ((input_name, input_spec),) = kwargs.items()
    ((output_name, output_spec),) = outputs.items()

    def predict(batch: np.ndarray) -> np.ndarray:
        return signature(**{input_name: tf.constant(batch)})[output_name].numpy()

    return SourceModel(
        path=path,
        kind="saved_model",
        input_shape=tuple(input_spec.shape.as_list()),
        output_shape=tuple(output_spec.shape.as_list()),
        sha256=folder_sha256(path),
        predict_fn=predict,
        keras_model=loaded,  # keep the object alive: the signature refers to it
    )
