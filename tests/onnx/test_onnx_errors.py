"""What cannot convert says so in one line naming the op and the node, exits 1 and writes nothing;
onnx2tf never reaches the network and never touches the user's file."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys

import pytest

from edgekit.errors import ConversionError, InputError


def convert_cli(model, out, *args: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "edgekit",
        "convert",
        str(model),
        "-t",
        "x86_64",
        "-q",
        "float32",
        "--out",
        str(out),
    ]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)


def test_an_op_that_cannot_convert_is_one_line_naming_it(onnx_files, tmp_path):
    result = convert_cli(onnx_files["custom_op"], tmp_path / "out")
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "custom op com.example.FancyActivation (node 'fancyactivation_" in lines[0], lines
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_standard_op_onnx2tf_lacks_is_named(onnx_files):
    from edgekit.conversion.onnx_model import load_onnx

    with pytest.raises(ConversionError, match=r"op CastLike \(node 'castlike_\d+'\) cannot be converted"):
        load_onnx(onnx_files["unsupported_op"])


def test_an_unsupported_input_type_is_refused(onnx_builders, tmp_path):
    import onnx

    from edgekit.conversion.onnx_model import load_onnx

    model = onnx_builders.classifier()
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT64
    path = onnx_builders.save(model, tmp_path / "ints.onnx")
    with pytest.raises(ConversionError, match="input 'images' has data type INT64"):
        load_onnx(path)


def test_a_file_that_is_not_onnx(tmp_path):
    from edgekit.conversion.onnx_model import load_onnx

    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00not a protobuf at all" * 10)
    with pytest.raises(InputError, match="not a readable ONNX model"):
        load_onnx(path)


def test_onnx2tf_failures_become_one_line():
    from edgekit.conversion.onnx_export import failure_line

    log = "\x1b[31mERROR:\x1b[0m The trace log is below.\nTraceback ...\nERROR: onnx_op_name: wa/conv_3\n"
    line = failure_line("m.onnx", SystemExit(1), log, {"wa/conv_3": "Conv"})
    assert line.startswith("m.onnx: onnx2tf cannot convert op Conv (node 'wa/conv_3')")
    error = ValueError("Dimensions must be equal")
    error.onnx_op_name = "mul_9"
    line = failure_line("m.onnx", error, "", {"mul_9": "Mul"})
    assert "op Mul (node 'mul_9'): ValueError: Dimensions must be equal" in line
    assert "\n" not in line


def test_no_network_and_the_users_file_untouched(onnx_files, monkeypatch):
    """onnx2tf would download a calibration sample: the prepared working folder means it never tries."""
    from edgekit.conversion.onnx_model import load_onnx

    path = onnx_files["segmenter"]
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = load_onnx(path)
    try:
        assert model.saved_model_path.is_dir()
    finally:
        model.workdir.close()
    assert not model.workdir.path.exists()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_node_names_tensorflow_rejects_are_rewritten(onnx_builders, tmp_path):
    """PaddleOCR-style names (`@`, `:`) break TensorFlow scopes: they are renamed before onnx2tf."""
    from edgekit.conversion.onnx_model import load_onnx

    model = onnx_builders.two_outputs()
    for i, node in enumerate(model.graph.node):
        node.name = f"conv2d_{i}.tmp_0@scope:{i}"
    model = load_onnx(onnx_builders.save(model, tmp_path / "names.onnx"))
    try:
        assert [t.name for t in model.outputs] == ["logits", "features"]
    finally:
        model.workdir.close()
