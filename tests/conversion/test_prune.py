"""Magnitude pruning: the sparsity each layer reaches, skip lists, the schedule, fine-tuning that keeps
the zeros, and zeros that survive `.keras` files, batch-norm folding and int8 conversion."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.errors import InputError, UsageError  # noqa: E402
from edgekit.targets import get_target  # noqa: E402

PRUNED = ("c2", "c3", "fc")  # c1 is the first layer, probs the last


@pytest.fixture(scope="session")
def digits16() -> dict:
    """scikit-learn's 8x8 digits at 16x16, shuffled and split, as preprocessed floats."""
    from sklearn.datasets import load_digits

    from edgekit.conversion.inputs import Samples

    digits = load_digits()
    x = np.kron(digits.images / 16.0, np.ones((2, 2)))[..., None].astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], digits.target[order].astype(np.int64)
    return {
        "train": Samples({"image": x[:1400]}, {"probs": y[:1400]}, "train"),
        "eval": Samples({"image": x[1400:]}, {"probs": y[1400:]}, "eval"),
    }


def load_single(path, spec, preprocess, labels=None, option="--calibration"):
    """load_samples for a one-input classifier, answering plain arrays."""
    from types import SimpleNamespace

    from edgekit.conversion.contract import ModelInputs, TensorInfo
    from edgekit.conversion.inputs import load_samples

    inputs = ModelInputs((spec,), (preprocess,), (TensorInfo("probs", (None, 3)),), 0, 3, labels and tuple(labels))
    data = load_samples(path, inputs, option=option)
    return SimpleNamespace(x=data.x[spec.name], y=data.y["probs"] if data.y else None)


@pytest.fixture(scope="session")
def trained(digits16):
    """A small CNN with batch norm, trained for a few seconds."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", name="c1")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9, name="c1_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", name="c2")(h)
    h = keras.layers.BatchNormalization(momentum=0.9, name="c2_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="c3")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, activation="relu", name="fc")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inputs, outputs, name="digits16")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    train = digits16["train"]
    model.fit(train.x["image"], train.y["probs"], epochs=6, batch_size=32, verbose=0)
    return model


def sparsity_of(model, name: str) -> float:
    return float((np.asarray(model.get_layer(name).kernel.numpy()) == 0).mean())


def int8_content(model, calibration: np.ndarray, tmp_path) -> bytes:
    from edgekit.conversion.contract import TensorInfo
    from edgekit.conversion.load import SourceModel, with_keras_model
    from edgekit.conversion.quantize import convert_saved_model, saved_model_dir

    tensors = (TensorInfo("image", tuple(model.inputs[0].shape)),), (TensorInfo("probs", (None, 10)),)
    source = with_keras_model(SourceModel(tmp_path, "keras", *tensors, ""), model)
    with saved_model_dir(source) as export:
        return convert_saved_model(export, "int8", source.signature_batch({"image": calibration}))


@pytest.fixture(scope="session")
def fine_tuned(trained, digits16):
    """The trained model pruned to 50 % with two epochs of fine-tuning."""
    from edgekit.conversion.prune import PruneSettings
    from edgekit.conversion.prune.model import prune_model

    return prune_model(trained, PruneSettings(sparsity=0.5, epochs=2), digits16["train"], digits16["eval"])


def test_mask_zeroes_exactly_the_smallest_weights():
    from edgekit.conversion.prune.magnitude import magnitude_mask

    kernel = np.random.default_rng(0).standard_normal((3, 3, 8, 16)).astype(np.float32)
    for sparsity in (0.3, 0.5, 0.9):
        mask = magnitude_mask(kernel, sparsity)
        assert int((mask == 0).sum()) == round(sparsity * kernel.size)
        assert np.abs(kernel[mask == 0]).max() <= np.abs(kernel[mask == 1]).min()


def test_block_mask_zeroes_runs_of_input_channels():
    """Blocks lie along the input-channel axis, the innermost axis of TFLite's weight layout, so each
    pruned block is a run of zero bytes in the .tflite."""
    from edgekit.conversion.prune.magnitude import magnitude_mask

    kernel = np.random.default_rng(1).standard_normal((3, 3, 10, 6)).astype(np.float32)
    mask = magnitude_mask(kernel, 0.5, block=4)
    blocks = np.moveaxis(mask, 2, 3)[..., :8].reshape(3, 3, 6, 2, 4)
    assert np.all(blocks.min(axis=-1) == blocks.max(axis=-1))  # all-or-nothing per block
    assert abs((mask == 0).mean() - 0.5) < 0.05
    dense = magnitude_mask(np.ones((4, 4), np.float32), 0.5, block=8)  # block wider than the axis
    assert (dense == 0).mean() == 0.5


def test_polynomial_schedule_rises_to_the_target():
    from edgekit.conversion.prune.magnitude import polynomial_sparsity

    values = [polynomial_sparsity(step, 100, 0.5) for step in range(0, 121, 10)]
    assert values[0] == 0.0 and values[10] == 0.5 and values[-1] == 0.5
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[5] > 0.25  # cubic: most of the pruning happens early, while there is time to recover


def test_one_shot_reaches_the_sparsity_per_layer_and_skips_first_and_last(trained):
    from edgekit.conversion.prune import PruneSettings
    from edgekit.conversion.prune.model import prune_model

    pruned, report = prune_model(trained, PruneSettings(sparsity=0.5))
    assert report.method == "one-shot" and report.fine_tuning is None
    layers = {layer.name: layer for layer in report.magnitude.layers}
    assert set(layers) == {"c1", "c2", "c3", "fc", "probs"}
    for name in PRUNED:
        assert layers[name].skipped is None
        assert layers[name].sparsity == pytest.approx(0.5, abs=1e-3)
        assert sparsity_of(pruned, name) == pytest.approx(0.5, abs=1e-3)
    assert layers["c1"].skipped == "first layer" and layers["probs"].skipped == "last layer"
    assert sparsity_of(pruned, "c1") < 0.05 and sparsity_of(pruned, "probs") < 0.05
    assert report.magnitude.sparsity == pytest.approx(0.5, abs=1e-3)
    assert report.magnitude.model_sparsity < 0.5
    assert sparsity_of(trained, "c2") < 0.05  # the input model is left alone


def test_skip_and_include_lists_are_honoured(trained):
    from edgekit.conversion.prune import PruneSettings
    from edgekit.conversion.prune.model import prune_model

    pruned, report = prune_model(trained, PruneSettings(sparsity=0.4, skip=("c3",), include=("probs",)))
    layers = {layer.name: layer for layer in report.magnitude.layers}
    assert layers["c3"].skipped == "--prune-skip" and sparsity_of(pruned, "c3") < 0.05
    assert layers["probs"].skipped is None and sparsity_of(pruned, "probs") == pytest.approx(0.4, abs=2e-3)
    assert layers["c2"].sparsity == pytest.approx(0.4, abs=1e-3)
    with pytest.raises(InputError, match="--prune-skip 'nope': no Conv or Dense layer"):
        prune_model(trained, PruneSettings(sparsity=0.5, skip=("nope",)))
    with pytest.raises(InputError, match="every Conv/Dense layer is skipped"):
        prune_model(trained, PruneSettings(sparsity=0.5, skip=PRUNED))
    with pytest.raises(UsageError, match="both in --prune-skip and --prune-include"):
        prune_model(trained, PruneSettings(sparsity=0.5, skip=("c2",), include=("c2",)))
    with pytest.raises(UsageError, match="--prune takes a share of weights to zero, between 0 and 1"):
        prune_model(trained, PruneSettings(sparsity=1.0))


def test_fine_tuning_keeps_the_mask_and_reports_accuracy(fine_tuned, trained, digits16):
    from edgekit.conversion.accuracy import model_accuracy
    from edgekit.conversion.prune.magnitude import FINETUNED_BLOCK
    from edgekit.conversion.prune.model import keras_predictor

    pruned, report = fine_tuned
    assert report.method == "fine-tuned"
    assert report.fine_tuning.epochs == 2 and report.fine_tuning.samples == 1400
    assert report.magnitude.block == FINETUNED_BLOCK
    for name in PRUNED:
        assert sparsity_of(pruned, name) == pytest.approx(0.5, abs=0.01)
    accuracy = report.float_accuracy
    assert set(accuracy) == {"unpruned", "one_shot", "fine_tuned"}
    assert accuracy["unpruned"] == pytest.approx(model_accuracy(keras_predictor(trained), digits16["eval"]))
    assert accuracy["fine_tuned"] > 0.8
    data = report.to_dict()
    assert data["method"] == "fine-tuned" and data["magnitude"]["layers"][1]["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_mask_survives_every_training_step(trained, digits16):
    """The callback re-applies the mask after each batch: no pruned weight ever comes back."""
    import keras

    from edgekit.conversion.prune.finetune import fine_tune
    from edgekit.conversion.prune.magnitude import apply_sparsity, plan_magnitude, pruning_callback
    from edgekit.conversion.prune.model import copy_model

    model = copy_model(trained)
    plan = plan_magnitude(model)
    whole = digits16["train"]
    train = dataclasses.replace(whole, x={"image": whole.x["image"][:320]}, y={"probs": whole.y["probs"][:320]})
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(sparsity_of(model, "c3"))

    callback = pruning_callback(plan, 0.5, 1, total_steps=20)
    fine_tune(model, train, epochs=2, learning_rate=1e-3, callbacks=[callback, Watch()])
    assert len(seen) == 20
    assert all(b >= a - 1e-9 for a, b in zip(seen, seen[1:]))  # sparsity only grows
    assert seen[-1] == pytest.approx(0.5, abs=1e-3)
    masks = apply_sparsity(plan, 0.5, 1)  # idempotent at the target: the zeros stay where they are
    assert set(masks) == set(PRUNED)
    for name in PRUNED:
        assert (masks[name] == 0).mean() == pytest.approx(0.5, abs=1e-3)
        assert np.array_equal(np.asarray(model.get_layer(name).kernel.numpy()) == 0, masks[name] == 0)


def test_zeros_survive_keras_files_batch_norm_folding_and_int8(fine_tuned, trained, digits16, tmp_path):
    import keras

    from edgekit.conversion.prune.compare import tflite_weight_sparsity
    from edgekit.runtime.inspect_model import plain_interpreter
    from edgekit.runtime.interpreter import ops_details

    pruned, _ = fine_tuned
    pruned.save(tmp_path / "pruned.keras")
    reloaded = keras.saving.load_model(tmp_path / "pruned.keras", compile=False)
    for name in PRUNED:
        assert sparsity_of(reloaded, name) == pytest.approx(0.5, abs=0.01)

    calibration = digits16["train"].x["image"][:64]
    contents = {
        "unpruned": int8_content(trained, calibration, tmp_path),
        "pruned": int8_content(reloaded, calibration, tmp_path),
    }
    path = tmp_path / "pruned.tflite"
    path.write_bytes(contents["pruned"])
    interpreter = plain_interpreter(path)
    interpreter.allocate_tensors()
    per_op = []
    for op in ops_details(interpreter):
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            weights = interpreter.get_tensor(int(op["inputs"][1]))
            assert weights.dtype == np.int8
            per_op.append(round(float((weights == 0).mean()), 2))
    # c1 (its batch norm folded in), c2 (likewise), c3, fc, probs: the pruned ones hold their zeros
    assert per_op[1] >= 0.5 and per_op[2] >= 0.5 and per_op[3] >= 0.5
    assert per_op[0] < 0.2 and per_op[4] < 0.2
    assert tflite_weight_sparsity(interpreter) > 0.45
    sizes = {k: len(gzip.compress(v, 9)) for k, v in contents.items()}
    assert sizes["pruned"] < 0.8 * sizes["unpruned"]
    assert len(contents["pruned"]) == pytest.approx(
        len(contents["unpruned"]), rel=0.02
    )  # zeros are stored, not dropped


def test_compare_converted_measures_both_models_the_same_way(trained, digits16, tmp_path, monkeypatch):
    from edgekit.conversion.accuracy import model_accuracy
    from edgekit.conversion.prune import PruneSettings, compare
    from edgekit.conversion.prune.model import prune_model
    from edgekit.conversion.tflite_model import TFLiteModel

    timed = []

    def fixed_timings(invokes, seconds, **kwargs):  # the timing loop's answer, known: p50 2 ms and 1 ms
        timed.append(len(invokes))
        return [np.array([1, 2, 9]) * 1_000_000, np.array([1, 1, 5]) * 1_000_000]

    monkeypatch.setattr(compare, "time_interleaved", fixed_timings)
    pruned, _ = prune_model(trained, PruneSettings(sparsity=0.5, channels=0.25))
    calibration = digits16["train"].x["image"][:64]
    contents = [int8_content(model, calibration, tmp_path) for model in (trained, pruned)]
    comparison = compare.compare_converted("int8", *contents, digits16["eval"], 1)
    assert timed == [2]  # both models timed in one interleaved run
    assert comparison.pruned.macs < 0.8 * comparison.unpruned.macs
    assert comparison.pruned.tflite_bytes == len(contents[1]) < comparison.unpruned.tflite_bytes == len(contents[0])
    assert comparison.pruned.weight_sparsity > 0.3 > comparison.unpruned.weight_sparsity
    for figures, content in zip((comparison.unpruned, comparison.pruned), contents):
        assert figures.accuracy == model_accuracy(TFLiteModel(content).predict, digits16["eval"])
    assert comparison.unpruned.accuracy > 0.8
    assert (comparison.unpruned.p50_ms, comparison.pruned.p50_ms, comparison.speedup) == (2.0, 1.0, 2.0)
    assert comparison.threads == 1
    data = comparison.to_dict()
    assert set(data) == {"mode", "threads", "unpruned", "pruned", "macs_ratio", "gzip_saving", "speedup"}
    assert set(data["pruned"]) == {"macs", "tflite_bytes", "gzip_bytes", "weight_sparsity", "accuracy", "p50_ms"}


def test_labelled_data_from_npz_and_class_folders(tmp_path):
    from PIL import Image

    from edgekit.bundle import Preprocess, TensorSpec
    from edgekit.conversion.inputs import TRAINING

    spec = TensorSpec("image", (1, 8, 8, 1), "float32")
    preprocess = Preprocess(size=(8, 8), color="L", mean=(0.0,), std=(255.0,), layout="NHWC")
    pixels = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1)).astype(np.uint8)
    np.savez(tmp_path / "train.npz", x=pixels, y=np.arange(6) % 3)
    data = load_single(tmp_path / "train.npz", spec, preprocess, option=TRAINING)
    np.testing.assert_allclose(data.x, pixels / 255.0, atol=1e-6)
    assert list(data.y) == [0, 1, 2, 0, 1, 2]
    for index, image in enumerate(pixels):
        folder = tmp_path / "folder" / ("cat", "dog")[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0], "L").save(folder / f"{index}.png")
    data = load_single(tmp_path / "folder", spec, preprocess, labels=["dog", "cat"], option=TRAINING)
    assert sorted(data.y.tolist()) == [0, 0, 0, 1, 1, 1] and data.x.shape == (6, 8, 8, 1)
    np.save(tmp_path / "x.npy", pixels)
    with pytest.raises(InputError, match="needs labels"):
        load_single(tmp_path / "x.npy", spec, preprocess, option=TRAINING)
    np.savez(tmp_path / "nolabels.npz", x=pixels)
    with pytest.raises(InputError, match="holds no 'y'"):
        load_single(tmp_path / "nolabels.npz", spec, preprocess, option=TRAINING)
    np.savez(tmp_path / "shape.npz", x=pixels[:, :4], y=np.zeros(6))
    with pytest.raises(InputError, match="expected"):
        load_single(tmp_path / "shape.npz", spec, preprocess, option=TRAINING)


def test_float_class_labels_and_nchw_pixels_load_like_eval_data(tmp_path):
    """y stored as floats is still class indices (as --eval-data takes it); uint8 NCHW pixels are
    normalized per channel on axis 1, not on the last axis."""
    from edgekit.bundle import Preprocess, TensorSpec
    from edgekit.conversion.inputs import TRAINING

    spec = TensorSpec("image", (1, 3, 4, 4), "float32")
    preprocess = Preprocess(size=(4, 4), color="RGB", mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0), layout="NCHW")
    pixels = np.full((5, 3, 4, 4), 100, np.uint8)
    np.savez(tmp_path / "train.npz", x=pixels, y=np.arange(5, dtype=np.float64) % 2)
    data = load_single(tmp_path / "train.npz", spec, preprocess, option=TRAINING)
    assert data.y.dtype.kind == "i" and list(data.y) == [0, 1, 0, 1, 0]
    assert [float(data.x[0, c, 0, 0]) for c in range(3)] == [45.0, 20.0, 8.75]


def test_pruning_cannot_lower_the_accuracy_bar(model_files, tmp_path):
    """--max-accuracy-drop measures from the user's model, not from the pruned one it converted."""
    from edgekit.conversion import pipeline
    from edgekit.errors import CheckFailed

    kwargs = dict(
        targets=["x86_64"],
        quantization="float32",
        calibration=model_files["calibration.npz"],
        eval_data=model_files["eval.npz"],
        max_accuracy_drop=1.0,
        prune=0.95,  # one-shot, every layer: accuracy falls
        prune_include=("c1", "probs"),
        out=tmp_path,
    )
    with pytest.raises(CheckFailed, match=r"drop .* pts > 1 \(--max-accuracy-drop\)"):
        pipeline.convert(model_files["digits16.keras"], **kwargs)
    assert list(tmp_path.iterdir()) == []
    report = pipeline.convert(model_files["digits16.keras"], allow_degraded=True, **kwargs)
    unpruned = report.pruning.float_accuracy["unpruned"]
    assert report.verification["accuracy_of"] == "unpruned source"
    assert report.bundles[0].accuracy.source == pytest.approx(unpruned, abs=1e-4)
    assert report.bundles[0].accuracy.drop_pts > 1.0


def test_loss_follows_outputs_and_labels():
    import keras

    from edgekit.conversion.prune.finetune import choose_loss

    probabilities = np.full((4, 3), 1 / 3, np.float32)
    logits = np.array([[2.0, -1.0, 0.5]] * 4, np.float32)
    assert choose_loss(keras, probabilities, np.array([0, 1, 2, 1]), "d")[1] == "sparse_categorical_crossentropy"
    loss, _, _ = choose_loss(keras, logits, np.array([0, 1, 2, 1]), "d")
    assert loss.get_config()["from_logits"] is True
    assert choose_loss(keras, logits, np.zeros((4, 3), np.float32) + 0.2, "d")[1] == "mean_squared_error"
    with pytest.raises(InputError, match="the model has 3 classes"):
        choose_loss(keras, probabilities, np.array([0, 1, 5, 1]), "d")


@pytest.fixture(scope="session")
def model_files(trained, digits16, tmp_path_factory) -> dict:
    """The trained model as a .keras file with calibration, training and evaluation .npz files."""
    folder = tmp_path_factory.mktemp("prune-cli")
    trained.save(folder / "digits16.keras")
    train, evaluation = digits16["train"], digits16["eval"]
    np.savez(folder / "calibration.npz", x=train.x["image"][:100])
    np.savez(folder / "train.npz", x=train.x["image"], y=train.y["probs"])
    np.savez(folder / "eval.npz", x=evaluation.x["image"], y=evaluation.y["probs"])
    return {name: folder / name for name in ("digits16.keras", "calibration.npz", "train.npz", "eval.npz")} | {
        "dir": folder
    }


def convert_args(files: dict, out) -> list[str]:
    return [
        "convert",
        files["digits16.keras"],
        "-t",
        "x86_64",
        "-q",
        "int8",
        "--calibration",
        files["calibration.npz"],
        "--out",
        out,
    ]


def test_cli_prune_with_fine_tuning_reports_json(model_files, tmp_path):
    from tests.conftest import cli_json

    code, report = cli_json(
        *convert_args(model_files, tmp_path),
        "--prune",
        "0.5",
        "--prune-skip",
        "c3",
        "--finetune-data",
        model_files["train.npz"],
        "--finetune-epochs",
        "1",
        "--eval-data",
        model_files["eval.npz"],
        "--archive",
    )
    assert code == 0
    pruning = report["pruning"]
    assert pruning["method"] == "fine-tuned" and pruning["fine_tuning"]["epochs"] == 1
    assert pruning["settings"]["sparsity"] == 0.5 and pruning["settings"]["skip"] == ["c3"]
    layers = {layer["name"]: layer for layer in pruning["magnitude"]["layers"]}
    assert layers["c2"]["sparsity"] == pytest.approx(0.5, abs=0.01) and layers["c2"]["skipped"] is None
    assert layers["c3"]["skipped"] == "--prune-skip" and layers["c3"]["sparsity"] < 0.05
    assert set(pruning["float_accuracy"]) == {"unpruned", "one_shot", "fine_tuned"}
    (comparison,) = pruning["comparisons"]
    assert comparison["mode"] == "int8" and comparison["threads"] == min(get_target("x86_64").threads, os.cpu_count())
    assert comparison["pruned"]["weight_sparsity"] > 0.3 > comparison["unpruned"]["weight_sparsity"]
    assert comparison["pruned"]["gzip_bytes"] < comparison["unpruned"]["gzip_bytes"]
    assert comparison["pruned"]["macs"] == comparison["unpruned"]["macs"]  # zeros are not fewer MACs
    assert comparison["unpruned"]["accuracy"] > 0.8 and comparison["pruned"]["accuracy"] > 0.7
    p50 = comparison["unpruned"]["p50_ms"], comparison["pruned"]["p50_ms"]
    assert comparison["speedup"] == pytest.approx(p50[0] / p50[1], abs=2e-3)
    (bundle,) = report["bundles"]
    assert bundle["archive"] == str(tmp_path / "digits16-x86_64.tar.gz")
    assert bundle["archive_bytes"] == (tmp_path / "digits16-x86_64.tar.gz").stat().st_size
    manifest = (tmp_path / "digits16-x86_64" / "edgekit.json").read_text()
    assert '"pruning"' in manifest and '"fine-tuned"' in manifest


def test_cli_channel_pruning_prints_both_models_side_by_side(model_files, tmp_path):
    from tests.conftest import edgekit_cli

    result = edgekit_cli(*convert_args(model_files, tmp_path), "--prune-channels", "0.3", "--prune-norm", "l2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "channel pruning 30% by l2 norm, one-shot" in out
    assert "int8: unpruned vs pruned" in out and "MACs" in out and "p50 ms" in out
    assert "one-shot pruning (no --finetune-data)" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--prune", "1.5"], 2, "--prune takes a share of weights to zero, between 0 and 1"),
        (["--prune-channels", "0"], 2, "--prune-channels takes a share of filters"),
        (["--finetune-data", "x.npz"], 2, "--finetune-data fine-tunes a pruned model"),
        (["--prune-skip", "c2"], 2, "--prune-skip needs --prune or --prune-channels"),
        (["--prune", "0.5", "--finetune-epochs", "2"], 2, "need --finetune-data"),
    ],
)
def test_cli_refuses_bad_pruning_options_in_one_line(model_files, tmp_path, args, code, message):
    from tests.conftest import edgekit_cli

    result = edgekit_cli(*convert_args(model_files, tmp_path), *args)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_prune_block_and_finetune_lr_through_the_library(model_files, tmp_path):
    from edgekit.conversion import pipeline

    report = pipeline.convert(
        model_files["digits16.keras"],
        targets=["x86_64"],
        quantization="int8",
        calibration=model_files["calibration.npz"],
        prune=0.5,
        prune_block=2,
        finetune_data=model_files["train.npz"],
        finetune_epochs=1,
        finetune_lr=1e-3,
        out=tmp_path,
    )
    pruning = report.pruning
    assert pruning.settings.block == 2 and pruning.magnitude.block == 2
    assert pruning.settings.learning_rate == 1e-3 and pruning.fine_tuning.learning_rate == 1e-3
    assert pruning.fine_tuning.epochs == 1 and pruning.fine_tuning.samples == 1400
    manifest = json.loads((tmp_path / "digits16-x86_64" / "edgekit.json").read_text())
    assert manifest["source"]["pruning"] == {
        "method": "fine-tuned",
        "sparsity": pytest.approx(0.5, abs=0.01),
        "block": 2,
        "finetune_epochs": 1,
    }
    recipe = manifest["conversion"]["recipe"]
    assert (recipe["prune"], recipe["prune_block"], recipe["finetune_lr"], recipe["finetune_epochs"]) == (
        0.5,
        2,
        1e-3,
        1,
    )
