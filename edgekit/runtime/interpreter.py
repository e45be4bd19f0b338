"""Choose the lightest TFLite interpreter present: ai-edge-litert, then tflite-runtime, then
tensorflow.lite (which costs seconds and hundreds of MB to import, so it is the last resort); load
models with it, and read what it says about them (the one place that uses its private op API)."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.bundle import TensorSpec

# Re-exported: the check lives with the bundle format, which both halves read.
from edgekit.bundle.model_file import check_tflite_file as check_tflite_file
from edgekit.bundle.model_file import check_tflite_header as check_tflite_header
from edgekit.errors import InputError, RuntimeNotFound, UsageError
from edgekit.native_output import quiet_native_output

RUNTIME_ENV = "EDGEKIT_RUNTIME"
# (report name, module to import, attribute path of Interpreter, distribution whose version we report).
# TensorFlow's public `tf.lite` is an API alias, not the `tensorflow.lite` package, hence the attribute path.
CANDIDATES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    ("tensorflow", "tensorflow", "lite.Interpreter", "tensorflow"),
)


@dataclass(frozen=True)
class RuntimeInfo:
    """Which TFLite interpreter edgekit uses, and its version."""

    name: str
    version: str
    interpreter_class: Any

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


_cache: dict[str, RuntimeInfo] = {}


def _version(distribution: str, module: Any) -> str:
    """The runtime's version: its package's `__version__` (free), else the installed distribution's
    metadata (importing importlib.metadata costs tens of milliseconds on every start)."""
    package = sys.modules.get(module.__name__.partition(".")[0], module)
    found = getattr(package, "__version__", None)
    if isinstance(found, str) and found[:1].isdigit():
        return found
    from importlib.metadata import PackageNotFoundError, version

    for name in (distribution, "tensorflow-cpu") if distribution == "tensorflow" else (distribution,):
        try:
            return version(name)
        except (PackageNotFoundError, ValueError):
            pass
    return str(found or "unknown")


def find_runtime(preferred: str | None = None) -> RuntimeInfo:
    """Import the first available interpreter, or the one named by `preferred`/`$EDGEKIT_RUNTIME`."""
    wanted = preferred or os.environ.get(RUNTIME_ENV) or None
    names = [c[0] for c in CANDIDATES]
    if wanted and wanted not in names:
        raise UsageError(f"unknown runtime {wanted!r} (known: {', '.join(names)})")
    key = wanted or ""
    if key in _cache:
        return _cache[key]
    for name, module_name, attribute, distribution in CANDIDATES:
        if wanted and name != wanted:
            continue
        try:
            module = importlib.import_module(module_name)
            interpreter_class = module
            for part in attribute.split("."):
                interpreter_class = getattr(interpreter_class, part)
        except (ImportError, AttributeError):
            continue
        info = RuntimeInfo(name, _version(distribution, module), interpreter_class)
        _cache[key] = info
        return info
    if wanted:
        raise RuntimeNotFound(f"runtime {wanted!r} is not installed")
    raise RuntimeNotFound("no TFLite runtime found: pip install ai-edge-litert (or tflite-runtime on 32-bit ARM)")


def check_numpy_for(runtime: RuntimeInfo) -> None:
    """tflite-runtime (2.14 and older) is built against numpy 1.x: with numpy 2 pip installs it happily
    and its first call fails with "SystemError ... CreateWrapperFromFile". Refuse that pair up front
    (the numpy that imports, not the metadata's: a path can put another numpy first)."""
    major = np.__version__.split(".")[0]
    if runtime.name == "tflite-runtime" and major.isdigit() and int(major) >= 2:
        raise RuntimeNotFound(
            f"tflite-runtime {runtime.version} cannot run with numpy {np.__version__} (it was built for numpy 1.x): "
            "pip install 'numpy<2' in the same environment (on 32-bit Pi OS: apt install python3-numpy)"
        )


def load_interpreter(model_path: str, threads: int, runtime: RuntimeInfo) -> Any:
    """Create and allocate an interpreter; turn the runtime's errors into one-line messages."""
    check_tflite_file(model_path)
    check_numpy_for(runtime)
    # The runtimes print "INFO: Created TensorFlow Lite XNNPACK delegate" and their own errors on fd 2;
    # keep the user's terminal clean and put any native message into the one-line error instead.
    with quiet_native_output() as captured:
        try:
            interpreter = runtime.interpreter_class(model_path=str(model_path), num_threads=threads)
            interpreter.allocate_tensors()
            error = None
        except (ValueError, RuntimeError) as exc:
            error = exc
    if error is not None:
        message = " ".join(str(error).split()) or " ".join("".join(captured).split())[-300:]
        raise InputError(f"{model_path}: {runtime.name} {runtime.version} cannot load this model: {message}")
    return interpreter


def delegate_applied(interpreter: Any) -> bool | None:
    """Whether a delegate (XNNPACK on CPU) took over part of the graph, when the runtime says."""
    try:
        ops = ops_details(interpreter)
    except Exception:
        return None
    return any(op.get("op_name") == "DELEGATE" for op in ops)


def ops_details(interpreter: Any) -> list[dict[str, Any]]:
    """The model's operators (name, input and output tensor indices). The one place edgekit uses the
    interpreter's private `_get_ops_details()`: every runtime has it, none exposes it publicly."""
    return list(interpreter._get_ops_details())


def tensor_spec(detail: dict[str, Any]) -> TensorSpec:
    """An interpreter tensor detail → TensorSpec (quantization only where it is real)."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    quantized = bool(scale) and dtype in ("int8", "uint8", "int16")
    return TensorSpec(
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=dtype,
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )
