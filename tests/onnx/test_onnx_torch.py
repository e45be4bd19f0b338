"""PyTorch modules through `convert(module, example_inputs=...)`: exported with torch.onnx.export
(TorchScript, opset 17), then converted as the .onnx. CI has no torch: the plumbing is tested with a
stand-in `torch` whose exporter writes an onnx.helper model; the real export runs where torch is."""

from __future__ import annotations

import contextlib
import sys
import types

import numpy as np
import pytest


@pytest.fixture
def fake_torch(onnx_builders, monkeypatch):
    calls = []

    class Module:
        def eval(self):
            return self

    def export(module, example, path, dynamo=True, **settings):
        calls.append({"dynamo": dynamo, **settings})
        onnx_builders.save(onnx_builders.classifier(), path)

    torch = types.ModuleType("torch")
    torch.nn = types.SimpleNamespace(Module=Module)
    torch.no_grad = contextlib.nullcontext
    torch.onnx = types.SimpleNamespace(export=export)
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch, calls


def test_a_module_is_exported_then_converted(fake_torch, tmp_path):
    from edgekit.conversion.pipeline import convert

    torch, calls = fake_torch

    class TinyNet(torch.nn.Module):
        def __call__(self, x):
            return np.zeros((1, 4), np.float32)

    example = np.zeros((1, 3, 32, 32), np.float32)
    report = convert(TinyNet(), example_inputs=(example,), targets=["x86_64"], quantization="float32", out=tmp_path)
    assert calls == [{"dynamo": False, "input_names": ["input"], "output_names": ["output"], "opset_version": 17}]
    assert report.name == "TinyNet" and report.source["kind"] == "onnx"
    assert (tmp_path / "TinyNet-x86_64" / "model.tflite").is_file()


def test_a_module_without_example_inputs_is_a_usage_error(fake_torch):
    from edgekit.conversion.pipeline import convert
    from edgekit.errors import UsageError

    torch, _ = fake_torch
    with pytest.raises(UsageError, match="example_inputs"):
        convert(torch.nn.Module(), targets=["x86_64"])


def test_real_pytorch_export(tmp_path):
    torch = pytest.importorskip("torch")
    from edgekit.conversion.pipeline import convert

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    report = convert(Net(), example_inputs=(torch.rand(1, 3, 32, 32),), targets=["x86_64"], quantization="float32",
                     out=tmp_path)  # fmt: skip
    assert report.bundles[0].fidelity.cosine > 0.9999
