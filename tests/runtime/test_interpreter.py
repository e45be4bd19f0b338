"""Interpreter choice: ai-edge-litert first, then tflite-runtime, then tensorflow.lite."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgekit.errors import RuntimeNotFound, UsageError
from edgekit.runtime.interpreter import find_runtime


def test_prefers_ai_edge_litert():
    runtime = find_runtime()
    assert runtime.name == "ai-edge-litert"
    assert runtime.version[0].isdigit()
    assert runtime.interpreter_class.__module__.startswith("ai_edge_litert")


def test_unknown_and_missing_runtimes_are_clear_errors():
    with pytest.raises(UsageError, match="unknown runtime"):
        find_runtime("onnx")
    try:
        import tflite_runtime  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeNotFound, match="tflite-runtime"):
            find_runtime("tflite-runtime")


FALLBACK = """
import sys
sys.modules["ai_edge_litert"] = None          # as if not installed
sys.modules["ai_edge_litert.interpreter"] = None
sys.modules["tflite_runtime"] = None
sys.modules["tflite_runtime.interpreter"] = None
from edgekit.runtime.interpreter import find_runtime
runtime = find_runtime()
print(runtime.name, runtime.interpreter_class.__module__)
"""


def test_falls_back_to_tensorflow_lite_when_nothing_lighter_is_installed():
    result = subprocess.run([sys.executable, "-c", FALLBACK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    name, module = result.stdout.split()
    assert name == "tensorflow" and module.startswith("tensorflow")


def test_forced_tensorflow_gives_the_same_answers(digits_bundles, digits):
    from edgekit.runtime.session import run

    litert = run(digits_bundles["bundles"]["float32"], [digits["images"]], repeat=2, warmup=0)
    tf = run(digits_bundles["bundles"]["float32"], [digits["images"]], repeat=2, warmup=0, runtime="tensorflow")
    assert tf.runtime.name == "tensorflow"
    for a, b in zip(litert.results, tf.results):
        assert [t.index for t in a.top_k] == [t.index for t in b.top_k]
        assert a.top_k[0].score == pytest.approx(b.top_k[0].score, abs=1e-5)
