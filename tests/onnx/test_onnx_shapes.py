"""Dynamic dimensions: fixed with --input-shape, or refused naming the input and its dimensions; several
outputs keep their ONNX order, names, shapes and layout."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.conversion.onnx_graph import parse_input_shapes
from edgekit.errors import InputError, UsageError


def test_dynamic_dimensions_without_input_shape_are_named(onnx_files):
    from edgekit.conversion.onnx_model import load_onnx

    with pytest.raises(InputError) as error:
        load_onnx(onnx_files["dynamic"])
    message = str(error.value)
    assert "input 'images' has dynamic dimensions N (axis 0), H (axis 2), W (axis 3)" in message
    assert "--input-shape images=1,3,?,?" in message


def test_input_shape_fixes_them(onnx_files):
    from edgekit.conversion.onnx_model import load_onnx

    model = load_onnx(onnx_files["dynamic"], ["images=1,3,48,48"])
    try:
        assert model.inputs[0].shape == (1, 3, 48, 48)
        assert model.outputs[0].shape == (1, 4)
        x = np.random.default_rng(0).random((3, 3, 48, 48), dtype=np.float32)
        assert model.predict({"images": x})[0].shape == (3, 4)  # onnxruntime takes the whole batch
    finally:
        model.workdir.close()


def test_cli_input_shape_converts_a_dynamic_model(onnx_files, tmp_path):
    from edgekit.conversion.pipeline import convert

    report = convert(onnx_files["dynamic"], targets=["x86_64"], quantization="float32", input_shape="1,3,40,40",
                     out=tmp_path)  # fmt: skip
    bundle = report.bundles[0]
    assert bundle.fidelity.cosine > 0.9999
    assert report.recipe.input_shape == ("1,3,40,40",)


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["1,3,320,320"], {None: (1, 3, 320, 320)}),
        (["images=1,3,320,320", "mask=1,1,320,320"], {"images": (1, 3, 320, 320), "mask": (1, 1, 320, 320)}),
        ({"images": (1, 3, 64, 64)}, {"images": (1, 3, 64, 64)}),
        (None, {}),
    ],
)
def test_input_shape_syntax(specs, expected):
    assert parse_input_shapes(specs) == expected


@pytest.mark.parametrize("specs", [["1,3,a,4"], ["images=1,3,0,4"], ["1,3,4,4", "x=1,3,4,4"], ["x=1", "x=2"]])
def test_bad_input_shapes_are_usage_errors(specs):
    with pytest.raises(UsageError):
        parse_input_shapes(specs)


def test_two_outputs_keep_their_order_names_and_layout(onnx_files):
    """Both heads through the float SavedModel and a float32 .tflite: logits (1, 5) and an NCHW feature
    map (1, 8, 8, 8), each as onnxruntime gives it."""
    from edgekit.conversion.onnx_model import load_onnx
    from edgekit.conversion.quantize import convert_saved_model
    from edgekit.conversion.tflite_model import TFLiteModel

    model = load_onnx(onnx_files["two_outputs"])
    try:
        assert [(t.name, t.shape) for t in model.outputs] == [("logits", (1, 5)), ("features", (1, 8, 8, 8))]
        content = convert_saved_model(model.saved_model_path, "float32")
    finally:
        model.workdir.close()
    runner = TFLiteModel(content).interpreter.get_signature_runner()
    x = np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)
    got = runner(**{model.signature_inputs[0]: x})
    expected = model.predict({"images": x})
    for key, reference in zip(model.signature_outputs, expected):
        assert got[key].shape == reference.shape
        np.testing.assert_allclose(got[key], reference, atol=1e-4)


def test_ops_with_nchw_semantics_convert_faithfully(onnx_builders, tmp_path):
    """Batch norm, max pool, a channel Concat, ConvTranspose, a nearest Resize and a Flatten right after
    a convolution: load_onnx itself refuses a float SavedModel that strays from onnxruntime."""
    from edgekit.conversion.onnx_model import load_onnx

    model = load_onnx(onnx_builders.save(onnx_builders.many_ops(), tmp_path / "many_ops.onnx"))
    try:
        assert [(t.name, t.shape) for t in model.outputs] == [("embedding", (1, 6)), ("heat", (1, 4, 64, 64))]
    finally:
        model.workdir.close()


def test_a_float_model_that_strays_from_onnxruntime_is_refused(onnx_files, monkeypatch):
    """Were an output's layout misread (here: forced), the check against onnxruntime refuses the model
    before anything is quantized, and the temporary folder goes."""
    import edgekit.conversion.onnx_model as onnx_model
    from edgekit.conversion.onnx_export import EdgeLayout
    from edgekit.errors import ConversionError

    monkeypatch.setattr(onnx_model, "output_layouts", lambda keras_model, outputs, shapes: (EdgeLayout("mask", None),))
    folders = []
    monkeypatch.setattr(onnx_model.OnnxWorkdir, "close", lambda self: folders.append(self.path) or self._finalizer())
    with pytest.raises(ConversionError, match="mask.*onnxruntime gives"):
        onnx_model.load_onnx(onnx_files["segmenter"])
    assert folders and not folders[0].exists()
