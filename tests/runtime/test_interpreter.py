"""Interpreter choice: ai-edge-litert first, then tflite-runtime, then tensorflow.lite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from edgekit.errors import RuntimeNotFound, UsageError
from edgekit.runtime.interpreter import find_runtime
from tests.conftest import ROOT

# Built by `make arm-env` (scripts/x86-tflite-runtime.sh): tflite-runtime 2.14, numpy and Pillow, no LiteRT.
TFLITE_RUNTIME_PYTHON = ROOT / ".arm" / "venv-x86_64-tflite-runtime" / "bin" / "python"


def test_prefers_ai_edge_litert():
    runtime = find_runtime()
    assert runtime.name == "ai-edge-litert"
    assert runtime.version == version("ai-edge-litert")  # the installed release, as pip knows it
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


RUN_JSON = """
import json, sys
from edgekit.runtime.session import run
report = run(sys.argv[1], sys.argv[2:], warmup=0, repeat=2)
print(json.dumps(report.to_dict()))
"""


@pytest.mark.parametrize("mode", ["int8", "float32"])
def test_falls_back_to_tflite_runtime_without_litert(digits_bundles, digits, tmp_path, mode):
    """What armv7 and the Jetson Nano rely on: no ai-edge-litert wheel, so tflite-runtime is chosen
    on its own and gives the same answers. A real Python with tflite-runtime installed, and a stand-in
    `ai_edge_litert` that refuses to import, so LiteRT is missing even if that environment gains it."""
    if not os.access(TFLITE_RUNTIME_PYTHON, os.X_OK):
        message = f"{TFLITE_RUNTIME_PYTHON} missing: run `make arm-env`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    shim = tmp_path / "no-litert" / "ai_edge_litert"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('ai-edge-litert is not installed here')\n")
    bundle = str(digits_bundles["bundles"][mode])
    result = subprocess.run(
        [str(TFLITE_RUNTIME_PYTHON), "-c", RUN_JSON, bundle, str(digits["images"])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{shim.parent}{os.pathsep}{ROOT}", "PYTHONNOUSERSITE": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    fallback = json.loads(result.stdout)
    assert fallback["runtime"] == "tflite-runtime" and fallback["runtime_version"] == "2.14.0"

    from edgekit.runtime.session import run

    litert = run(bundle, [digits["images"]], warmup=0, repeat=2).to_dict()
    assert litert["runtime"] == "ai-edge-litert"
    assert len(fallback["results"]) == len(litert["results"]) == 10
    for a, b in zip(fallback["results"], litert["results"]):
        assert a["input"] == b["input"]
        assert a["top_k"][0]["label"] == a["input"].rsplit("digit-", 1)[1][0]  # right, as on LiteRT
        assert a["top_k"][0]["index"] == b["top_k"][0]["index"]
        # float32: the same arithmetic. int8: the two releases' integer kernels round differently inside
        # the network (a few steps of the output's 1/256 scale on a less certain image).
        tolerance = 1e-5 if mode == "float32" else 0.05
        assert a["top_k"][0]["score"] == pytest.approx(b["top_k"][0]["score"], abs=tolerance)


def test_native_output_is_captured_not_shown(capfd):
    """What C++ code writes to fds 1 and 2 (LiteRT's delegate notices, TensorFlow's logs) is kept off
    the terminal and handed back for error messages."""
    from edgekit.native_output import quiet_native_output

    with quiet_native_output() as captured:
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(1, b"native line\n")
    os.write(1, b"after\n")
    out, err = capfd.readouterr()
    assert captured == ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nnative line\n"]
    assert out == "after\n" and err == ""
    with quiet_native_output(verbose=True) as shown:
        os.write(2, b"shown with --verbose\n")
    assert shown == [] and capfd.readouterr().err == "shown with --verbose\n"
