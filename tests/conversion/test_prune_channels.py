"""Structured channel pruning: narrower layers, the same outputs when the removed filters were dead,
channels kept aligned across Add/Concatenate, frozen where rewriting would change the model."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.errors import InputError, UsageError  # noqa: E402


def residual_model(seed: int = 0):
    """A small model with every construct the planner handles: BN, depthwise, Add, Concatenate,
    Flatten → Dense, global pooling."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    y = keras.layers.Conv2D(32, 1, name="expand")(x)
    y = keras.layers.BatchNormalization(name="expand_bn")(y)
    y = keras.layers.ReLU(name="expand_relu")(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(y)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.Conv2D(16, 1, name="project")(y)
    x = keras.layers.Add(name="add")([x, y])
    side = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="side")(x)
    x = keras.layers.Concatenate(name="cat")([x, side])
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(20, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(5, name="head")(x)
    return keras.Model(inputs, outputs, name="residual")


@pytest.fixture(scope="session")
def model():
    return residual_model()


@pytest.fixture(scope="session")
def trained() -> dict:
    """scikit-learn's 8x8 digits at 16x16 and a small CNN trained on them for a few seconds."""
    import keras
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = np.kron(digits.images / 16.0, np.ones((2, 2)))[..., None].astype(np.float32)
    y = digits.target
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", name="c1")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9, name="c1_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="c3")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x[:1400], y[:1400], epochs=8, batch_size=32, verbose=0)
    return {"model": model, "x": x[1400:], "y": y[1400:], "calibration": x[:200]}


@pytest.fixture(scope="session")
def batch() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((8, 12, 12, 3)).astype(np.float32)


def kept_of(report) -> dict[str, int]:
    return {layer.name: layer.kept for layer in report.layers}


def test_pruned_model_is_narrower_with_the_same_output_shape(model, batch):
    from edgekit.conversion.prune.channels import prune_channels

    pruned, report = prune_channels(model, 0.3, multiple=1)
    kept = kept_of(report)
    assert kept == {"stem": 11, "expand": 22, "project": 11, "side": 8, "conv3": 14}
    for name, count in kept.items():
        assert pruned.get_layer(name).filters == count
        assert pruned.get_layer(name).kernel.shape[-1] == count
    assert pruned.get_layer("dw").kernel.shape[2] == kept["expand"]
    assert pruned.get_layer("expand_bn").gamma.shape[0] == kept["expand"]
    assert pruned.get_layer("fc").kernel.shape[0] == 6 * 6 * kept["conv3"]
    assert pruned.output_shape == model.output_shape
    assert pruned(batch).shape == model(batch).shape
    assert report.params_after < report.params_before
    assert model.get_layer("stem").filters == 16  # the input model is left alone


def test_add_keeps_its_inputs_aligned(model):
    from edgekit.conversion.prune.channels import prune_channels

    pruned, report = prune_channels(model, 0.5, multiple=1)
    layers = {layer.name: layer for layer in report.layers}
    assert layers["stem"].tied_with == ("project",)
    assert layers["project"].tied_with == ("stem",)
    assert layers["stem"].kept == layers["project"].kept == 8
    assert pruned.get_layer("cat").output.shape[-1] == layers["stem"].kept + layers["side"].kept


def test_removing_dead_filters_changes_nothing(batch):
    """Zero the filters that pruning will remove (the same ones on both sides of the Add): the
    pruned model must give the same outputs, which checks every weight slice (conv inputs,
    depthwise, batch norm, concatenation offsets and the Flatten → Dense rows)."""
    from edgekit.conversion.prune.channels import prune_channels

    model = residual_model(seed=3)
    ratio = 0.25
    for name in ("stem", "expand", "project", "side", "conv3"):
        layer = model.get_layer(name)
        kernel = layer.kernel.numpy()
        dead = int(round(kernel.shape[-1] * ratio))
        kernel[..., 1 : 1 + dead] = 0.0  # channels 1.. (not the first: offsets must be right)
        layer.kernel.assign(kernel)
    pruned, report = prune_channels(model, ratio, multiple=1)
    assert all(layer.kept < layer.filters for layer in report.layers)
    np.testing.assert_allclose(np.asarray(pruned(batch)), np.asarray(model(batch)), atol=1e-4, rtol=1e-4)


def test_tiny_ratio_gives_close_predictions(trained):
    """Removing the weakest few filters of a trained model (with calibration samples, as `convert`
    always has) barely moves its answers."""
    from edgekit.conversion.prune.channels import prune_channels

    model, x = trained["model"], trained["x"]
    pruned, report = prune_channels(model, 0.04, multiple=1, samples=trained["calibration"])
    assert [layer.filters - layer.kept for layer in report.layers] == [1, 1, 3]
    before, after = np.asarray(model(x)), np.asarray(pruned(x))
    assert (before.argmax(axis=1) == trained["y"]).mean() > 0.9
    assert (before.argmax(axis=1) == after.argmax(axis=1)).mean() >= 0.95
    assert np.abs(before - after).mean() < 0.02


def test_calibration_samples_keep_each_layer_mean_output(trained):
    """With samples, what removed channels added on average moves into the readers' biases (or their
    batch norm's mean): pruned outputs stay closer to the original ones."""
    from edgekit.conversion.prune.channels import prune_channels

    model, x = trained["model"], trained["x"]
    plain, _ = prune_channels(model, 0.3, multiple=1)
    kept, report = prune_channels(model, 0.3, multiple=1, samples=trained["calibration"])
    assert report.compensated == ("c2", "c3", "probs")
    before = np.asarray(model(x))
    error_plain = np.abs(np.asarray(plain(x)) - before).mean()
    error_kept = np.abs(np.asarray(kept(x)) - before).mean()
    assert error_kept < 0.8 * error_plain


def test_l1_and_l2_rank_filters_by_their_norm():
    import keras

    from edgekit.conversion.prune.channels import prune_channels

    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 1, use_bias=False, name="c")(inputs)
    outputs = keras.layers.Dense(3, name="d")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    # filter 0: one big weight (large L2, small L1); filter 1: many medium weights (large L1, small L2)
    model.get_layer("c").kernel.assign(np.array([[[[3.0, 1.9, 5, 6], [0.0, 1.9, 5, 6]]]], dtype=np.float32))
    _, l1 = prune_channels(model, 0.25, "l1", multiple=1)
    _, l2 = prune_channels(model, 0.25, "l2", multiple=1)
    from edgekit.conversion.prune.channel_graph import plan_channels
    from edgekit.conversion.prune.channels import filter_norms

    plan = plan_channels(model)
    assert filter_norms(plan, "c", "l1")[0] < filter_norms(plan, "c", "l1")[1]
    assert filter_norms(plan, "c", "l2")[0] > filter_norms(plan, "c", "l2")[1]
    assert l1.layers[0].kept == l2.layers[0].kept == 3


def test_model_outputs_and_unknown_layers_stay_whole():
    import keras

    from edgekit.conversion.prune.channels import prune_channels

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", name="body")(inputs)
    r = keras.layers.Conv2D(8, 1, name="into_reshape")(x)
    r = keras.layers.Reshape((8, 8, 2, 4), name="reshape")(r)
    r = keras.layers.Flatten()(r)
    seg = keras.layers.Conv2D(4, 1, name="segmentation")(x)
    model = keras.Model(inputs, [seg, r])
    pruned, report = prune_channels(model, 0.5, multiple=1)
    layers = {layer.name: layer for layer in report.layers}
    assert layers["body"].kept == 8
    assert layers["segmentation"].kept == 4 and "model output" in layers["segmentation"].kept_all_because
    assert layers["into_reshape"].kept == 8 and "Reshape" in layers["into_reshape"].kept_all_because
    assert [tuple(o.shape) for o in pruned.outputs] == [tuple(o.shape) for o in model.outputs]


def test_skip_list_keeps_named_convs(model):
    from edgekit.conversion.prune.channels import prune_channels

    _, report = prune_channels(model, 0.3, skip=("expand",), multiple=1)
    layers = {layer.name: layer for layer in report.layers}
    assert layers["expand"].kept == 32 and layers["expand"].kept_all_because == "--prune-skip"
    assert layers["side"].kept < 12
    with pytest.raises(InputError, match="no layer of that name"):
        prune_channels(model, 0.3, skip=("nope",))


def test_channel_counts_round_to_simd_friendly_multiples():
    from edgekit.conversion.prune.channels import kept_count

    assert kept_count(96, 0.3, 8) == 64  # 67 → nearest multiple of 8
    assert kept_count(144, 0.3, 8) == 104
    assert kept_count(24, 0.3, 8) == 17  # under 4 x 8 channels: exact, rounding would distort it
    assert kept_count(96, 0.3, 1) == 67
    assert kept_count(3, 0.9, 1) == 1


def test_sequential_models_are_supported():
    import keras

    from edgekit.conversion.prune.channels import prune_channels

    model = keras.Sequential(
        [
            keras.Input((10, 10, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    pruned, report = prune_channels(model, 0.5, multiple=1)
    assert [layer.kept for layer in report.layers] == [4, 8]
    assert pruned(np.zeros((1, 10, 10, 1), np.float32)).shape == (1, 2)


def test_subclassed_models_get_a_clear_error():
    import keras

    from edgekit.conversion.prune.channels import prune_channels

    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    model = Custom()
    model(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(InputError, match="functional or Sequential"):
        prune_channels(model, 0.3)
    with pytest.raises(UsageError, match="--prune-channels takes a share of filters to remove, between 0 and 1"):
        prune_channels(residual_model(), 1.0)


def test_int8_conversion_of_the_pruned_model_does_less_work(model, tmp_path):
    """Fewer channels are fewer MACs in the converted .tflite, counted from its operators."""
    import dataclasses

    from edgekit.conversion.load import SourceModel
    from edgekit.conversion.prune.channels import prune_channels
    from edgekit.conversion.quantize import convert_saved_model, saved_model_dir
    from edgekit.runtime.macs import count_macs

    calibration = np.random.default_rng(2).standard_normal((16, 12, 12, 3)).astype(np.float32)
    pruned, _ = prune_channels(model, 0.3, multiple=1)
    source = SourceModel(tmp_path, "keras", (None, 12, 12, 3), (None, 5), "", keras_model=model)
    macs = []
    for name, keras_model in (("unpruned", model), ("pruned", pruned)):
        with saved_model_dir(dataclasses.replace(source, keras_model=keras_model)) as export:
            path = tmp_path / f"{name}.tflite"
            path.write_bytes(convert_saved_model(export, "int8", calibration))
        macs.append(count_macs(path))
    assert macs[1] < 0.65 * macs[0]
