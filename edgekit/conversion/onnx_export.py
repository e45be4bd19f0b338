"""ONNX → float SavedModel, through onnx2tf, with the ONNX model's own layout at the edges.

onnx2tf (1.29.24, used only for this step: quantization stays in edgekit's converter) turns every
NCHW tensor into NHWC inside. The SavedModel written here wraps its graph so that inputs and outputs
keep the ONNX layout, shapes and names: the `.tflite` made from it takes NCHW and answers NCHW, so
the device runtime and the user's post-processing need nothing new, at the price of one TRANSPOSE
per 4-D edge (measured in benchmarks/onnx_vs_onnxruntime.py).

onnx2tf is run as the issue measured it must be: on a private copy of the file (it rewrites its input
in place), in a working folder that holds the calibration sample it would otherwise download (even
for a float conversion), with onnxsim run beforehand from this Python (onnx2tf looks for the `onnxsim`
executable on PATH), its `sys.exit(1)` and its pages of output caught: the user sees one line, and
the log with --verbose or EDGEKIT_DEBUG=1."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from edgekit.conversion.onnx_graph import INSTALL_HINT, OnnxTensor, unique_name
from edgekit.conversion.quiet import import_tensorflow, quiet_native_output
from edgekit.errors import ConversionError, InputError

CONVERTER = "onnx2tf"
# The sample onnx2tf reads from its working folder for its own accuracy checks of 3-channel image
# inputs, downloading it when absent. Any images of that shape serve: it never reaches the bundle.
CALIBRATION_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
CALIBRATION_SHAPE = (20, 128, 128, 3)
ONNXSIM_SECONDS = 600
LAYOUT = "nchw-edges"  # manifest source.layout: the .tflite keeps the ONNX layout at its inputs and outputs
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class EdgeLayout:
    """How one graph edge differs between ONNX and onnx2tf's graph: the permutation taking the ONNX
    tensor to onnx2tf's (None: the same layout)."""

    name: str
    perm: tuple[int, ...] | None

    @property
    def inverse(self) -> tuple[int, ...] | None:
        return None if self.perm is None else tuple(int(i) for i in np.argsort(self.perm))


def converter_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{CONVERTER} {version(CONVERTER)}"
    except PackageNotFoundError:
        return CONVERTER


def known_ops() -> frozenset[str]:
    """The ONNX ops onnx2tf converts: one module each under onnx2tf.ops (found without importing it)."""
    import importlib.util
    import pkgutil

    spec = importlib.util.find_spec("onnx2tf")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"ONNX conversion needs onnx2tf: {INSTALL_HINT}")
    ops_path = [str(Path(p) / "ops") for p in spec.submodule_search_locations]
    return frozenset(m.name for m in pkgutil.iter_modules(ops_path) if not m.name.startswith("_"))


def simplify(source: Path, target: Path, shapes: Mapping[str, Sequence[int]], verbose: bool = False) -> None:
    """onnxsim from this Python (as onnx2tf would run it, but never depending on PATH): constant
    folding, and the fixed input shapes propagated through Shape/Reshape chains."""
    shape_args = [f"{name}:{','.join(map(str, dims))}" for name, dims in shapes.items()]
    command = [sys.executable, "-m", "onnxsim", str(source), str(target), "--overwrite-input-shape", *shape_args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=ONNXSIM_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"{source.name}: onnxsim took over {ONNXSIM_SECONDS} s simplifying the model") from None
    if verbose:
        sys.stderr.write(result.stdout + result.stderr)
    if result.returncode != 0 or not target.exists():
        log = tail(result.stderr or result.stdout)
        if "No module named onnxsim" in log:
            raise InputError(f"ONNX conversion needs onnxsim: {INSTALL_HINT}")
        raise ConversionError(f"{source.name}: onnxsim could not simplify the model: {log}")


@contextlib.contextmanager
def working_folder(folder: Path) -> Iterator[None]:
    """onnx2tf's working folder: the current directory while it runs, holding its calibration sample."""
    sample = folder / CALIBRATION_SAMPLE
    if not sample.exists():
        pixels = np.random.default_rng(0).random(CALIBRATION_SHAPE, dtype=np.float32)
        np.save(sample, pixels)
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_onnx2tf(
    onnx_file: Path, shapes: Mapping[str, Sequence[int]], node_ops: Mapping[str, str], verbose: bool
) -> Any:
    """onnx2tf's Keras model of `onnx_file` (already simplified, fixed shapes): every failure, its
    `sys.exit(1)` included, as one ConversionError naming the op and node it failed at."""
    import_tensorflow()
    # onnx2tf sets the recursion limit to the C int maximum when imported (for deep graphs): keep that
    # while it converts, then restore ours, or a later deep recursion crashes the process (a segfault
    # instead of a RecursionError: a deeply nested manifest, say).
    recursion_limit = sys.getrecursionlimit()
    with quiet_native_output(verbose) as captured, working_folder(onnx_file.parent):
        failure: BaseException | None = None
        try:
            import onnx2tf

            model = onnx2tf.convert(
                input_onnx_file_path=str(onnx_file),
                output_folder_path=str(onnx_file.parent / "onnx2tf"),
                disable_model_save=True,  # the model is wrapped and saved here, with ONNX-layout edges
                not_use_onnxsim=True,  # already run by simplify()
                overwrite_input_shape=[f"{n}:{','.join(map(str, d))}" for n, d in shapes.items()] or None,
                keep_shape_absolutely_input_names=list(shapes) or None,  # inputs exactly as ONNX has them
                non_verbose=not verbose,
                verbosity="info" if verbose else "error",
            )
        except ImportError as exc:
            raise InputError(f"ONNX conversion needs {exc.name or 'onnx2tf'}: {INSTALL_HINT}") from None
        except (Exception, SystemExit) as exc:  # onnx2tf exits the process on errors: keep the process
            failure = exc
        finally:
            sys.setrecursionlimit(recursion_limit)
    if failure is None:
        return model
    log = ANSI.sub("", captured[0] if captured else "")
    raise ConversionError(failure_line(onnx_file.name, failure, log, node_ops)) from None


def failure_line(file: str, failure: BaseException, log: str, node_ops: Mapping[str, str]) -> str:
    """onnx2tf's failure as one line: the op and node it stopped at, and why."""
    node = getattr(failure, "onnx_op_name", None)
    if node is None:
        found = re.findall(r"onnx_op_name: (\S+)", log)
        node = found[-1] if found else None
    missing = re.search(r"(\w+) OP is not yet implemented", log)
    detail = "" if isinstance(failure, SystemExit) else " ".join(f"{type(failure).__name__}: {failure}".split())
    if not detail:
        errors = [line.strip() for line in log.splitlines() if line.strip().startswith("ERROR:")]
        detail = errors[0][len("ERROR:") :].strip() if errors else "it stopped without saying why"
    op = missing.group(1) if missing else node_ops.get(str(node), "")
    at = f"op {op} (node {node!r})" if node else (f"op {op}" if op else "the model")
    return f"{file}: {CONVERTER} cannot convert {at}: {detail[:240]} (--verbose shows its log)"


def tail(text: str, size: int = 240) -> str:
    return " ".join(ANSI.sub("", text).split())[-size:]


def edge_layouts(
    keras_model: Any, inputs: Sequence[OnnxTensor], shapes: Mapping[str, Sequence[int]]
) -> tuple[EdgeLayout, ...]:
    """For each input, how onnx2tf's input differs from the ONNX one (kept absolutely: the same)."""
    layouts = []
    for tensor, keras_input in zip(inputs, keras_model.inputs):
        expected = tuple(shapes[tensor.name])
        got = tuple(int(d) if d is not None else -1 for d in keras_input.shape)
        if got == expected:
            layouts.append(EdgeLayout(tensor.name, None))
            continue
        perm = channels_last(len(expected))
        if tuple(expected[i] for i in perm) != got:
            raise ConversionError(f"{CONVERTER} changed input {tensor.name!r} from {expected} to {got}")
        layouts.append(EdgeLayout(tensor.name, perm))
    return tuple(layouts)


def output_layouts(
    keras_model: Any, outputs: Sequence[OnnxTensor], shapes: Sequence[Sequence[int]]
) -> tuple[EdgeLayout, ...]:
    """For each output, the permutation from the ONNX layout to onnx2tf's: onnx2tf marks the outputs
    it left channels-last (`onnx_output_layouts`), and its shapes must agree."""
    marked = getattr(keras_model, "onnx_output_layouts", {}) or {}
    layouts = []
    for tensor, shape, keras_output in zip(outputs, shapes, keras_model.outputs):
        got = tuple(int(d) if d is not None else -1 for d in keras_output.shape)
        expected = tuple(shape)
        perm = channels_last(len(expected))
        transposed = tuple(expected[i] for i in perm)
        if got == expected and (not marked.get(tensor.name) or transposed != expected):
            layouts.append(EdgeLayout(tensor.name, None))
        elif got == transposed:
            layouts.append(EdgeLayout(tensor.name, perm))
        else:
            raise ConversionError(
                f"{CONVERTER} made output {tensor.name!r} of shape {got}, expected {expected} (ONNX) or {transposed}"
            )
    return tuple(layouts)


def channels_last(rank: int) -> tuple[int, ...]:
    """NC... → N...C: (0, 2, 3, 1) for rank 4."""
    return (0, *range(2, rank), 1) if rank >= 3 else tuple(range(rank))


def signature_name(name: str, used: set[str]) -> str:
    """An ONNX tensor name as a SavedModel signature key (letters, digits, `_`, `.`, `-`, `/`)."""
    key = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name) or "tensor"
    return unique_name(key if re.match(r"[A-Za-z]", key) else f"t_{key}", used)


def write_saved_model(
    keras_model: Any,
    folder: Path,
    inputs: Sequence[OnnxTensor],
    shapes: Mapping[str, Sequence[int]],
    outputs: Sequence[OnnxTensor],
    input_layouts: Sequence[EdgeLayout],
    out_layouts: Sequence[EdgeLayout],
    verbose: bool = False,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Save onnx2tf's model with ONNX-layout edges as a SavedModel ('serving_default'); returns the
    signature's input and output keys (the ONNX names, made valid where needed)."""
    tf = import_tensorflow()
    used: set[str] = set()
    in_keys = tuple(signature_name(t.name, used) for t in inputs)
    out_keys = tuple(signature_name(t.name, used) for t in outputs)
    specs = [tf.TensorSpec(tuple(shapes[t.name]), tf.float32, name=key) for t, key in zip(inputs, in_keys)]

    class OnnxEdges(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = keras_model

        @tf.function(input_signature=specs)
        def serve(self, *tensors: Any) -> dict[str, Any]:
            moved = [
                x if layout.perm is None else tf.transpose(x, layout.perm) for x, layout in zip(tensors, input_layouts)
            ]
            results = self.model(moved if len(moved) > 1 else moved[0], training=False)
            results = results if isinstance(results, (list, tuple)) else [results]
            return {
                key: y if layout.inverse is None else tf.transpose(y, layout.inverse)
                for key, y, layout in zip(out_keys, results, out_layouts)
            }

    module = OnnxEdges()
    with quiet_native_output(verbose):
        tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return in_keys, out_keys
