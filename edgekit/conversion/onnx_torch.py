"""A PyTorch module → a temporary `.onnx`, for `convert(module, example_inputs=(tensor, ...))`.

torch is never a dependency of edgekit: it is imported only when a caller hands over a module. The
export uses TorchScript tracing (`dynamo=False`, opset 17): the dynamo exporter needs onnxscript, and
opset 17 is what onnx2tf converts best."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence

from edgekit.bundle.files import temporary_folder
from edgekit.errors import InputError, UsageError
from edgekit.native_output import quiet_native_output

OPSET = 17


def tensor_names(prefix: str, count: int) -> list[str]:
    return [prefix] if count == 1 else [f"{prefix}_{i}" for i in range(count)]


@contextlib.contextmanager
def exported_onnx(
    module: Any,
    example_inputs: Any,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    verbose: bool = False,
) -> Iterator[Path]:
    """`module` exported to ONNX in a temporary folder (removed afterwards), named after its class:
    inputs "input" (or input_0, input_1, ...) and outputs "output" (output_0, ...) unless named."""
    try:
        import torch
    except ImportError:
        raise InputError(
            "converting a torch.nn.Module needs PyTorch (not a dependency of edgekit); or export it with "
            "torch.onnx.export yourself and convert the .onnx"
        ) from None
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"convert() takes a model path or a torch.nn.Module, got {type(module).__name__}")
    if example_inputs is None:
        raise UsageError("a torch.nn.Module needs example_inputs=(tensor, ...) to be exported")
    example = tuple(example_inputs) if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
    module.eval()
    with torch.no_grad():
        outputs = module(*example)
    count = len(outputs) if isinstance(outputs, (list, tuple)) else 1
    names_in = list(input_names or tensor_names("input", len(example)))
    names_out = list(output_names or tensor_names("output", count))
    with temporary_folder("edgekit-torch-") as folder:
        path = folder / f"{type(module).__name__}.onnx"
        settings = {"input_names": names_in, "output_names": names_out, "opset_version": OPSET}
        try:
            with torch.no_grad(), quiet_native_output(verbose) as captured:
                try:
                    torch.onnx.export(module, example, str(path), dynamo=False, **settings)
                except TypeError as exc:  # torch before 2.5 has no `dynamo` switch: it traces anyway
                    if "dynamo" not in str(exc):
                        raise
                    torch.onnx.export(module, example, str(path), **settings)
        except Exception as exc:
            log = " ".join((captured[0] if captured else "").split())[-200:]
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise InputError(f"torch.onnx.export failed for {type(module).__name__}: {detail} {log}".strip()) from None
        yield path
