"""The recipe: one frozen options object, validated once, read from JSON or TOML, overridden by keyword
arguments (as flags override --recipe), written into every bundle, and enough to convert again."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import edgekit
from edgekit.bundle import MANIFEST_NAME
from edgekit.conversion import pipeline
from edgekit.conversion.recipe import MACHINE_LOCAL, ConvertOptions
from edgekit.errors import InputError, UsageError

TOML = """
targets = ["rpi4", "x86_64"]
quantization = "int8"
calibration = "calib.npz"
calibration_size = 50
mean = [127.5]
keep_float = "spike,probs"
min_cosine = 0.95
"""


def test_json_and_toml_files_give_the_same_recipe(tmp_path):
    (tmp_path / "r.toml").write_text(TOML)
    from_toml = ConvertOptions.from_file(tmp_path / "r.toml")
    (tmp_path / "r.json").write_text(json.dumps(from_toml.to_dict()))
    assert ConvertOptions.from_file(tmp_path / "r.json") == from_toml
    assert from_toml.targets == ("rpi4", "x86_64") and from_toml.keep_float == ("spike", "probs")
    assert from_toml.mean == (127.5,) and from_toml.calibration_size == 50 and from_toml.min_cosine == 0.95
    assert ConvertOptions.from_dict(from_toml.to_dict()) == from_toml  # to_dict/from_dict round-trip


def test_overrides_win_over_the_file(tmp_path):
    (tmp_path / "r.toml").write_text(TOML)
    resolved = ConvertOptions.resolve(tmp_path / "r.toml", {"quantization": "float16", "keep_float": ()})
    assert resolved.quantization == "float16" and resolved.keep_float == ()
    assert resolved.calibration_size == 50 and resolved.targets == ("rpi4", "x86_64")  # the rest from the file
    assert ConvertOptions.resolve(resolved, {"min_cosine": 0.9}).min_cosine == 0.9


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prune": 1.5}, "--prune takes a share of weights to zero, between 0 and 1"),
        ({"prune_channels": 0.0}, "--prune-channels takes a share of filters"),
        ({"prune": 0.5, "prune_block": 0}, "--prune-block must be at least 1"),
        ({"prune": 0.5, "prune_norm": "l3"}, "--prune-norm must be one of l1, l2"),
        ({"finetune_epochs": 2}, "--finetune-epochs and --finetune-lr need --finetune-data"),
        ({"finetune_lr": 1e-3}, "--finetune-epochs and --finetune-lr need --finetune-data"),
        ({"prune": 0.5, "finetune_data": "t.npz", "finetune_lr": -1.0}, "--finetune-lr must be a positive number"),
        ({"finetune_data": "t.npz"}, "--finetune-data fine-tunes a pruned model"),
        ({"prune_skip": ("c2",)}, "--prune-skip needs --prune or --prune-channels"),
        ({"min_agreement": 1.5}, "--min-agreement must be between 0 and 1"),
        ({"max_accuracy_drop": 1.0}, "--max-accuracy-drop needs labelled --eval-data"),
        ({"calibration_size": 0}, "--calibration-size must be at least 1"),
        ({"std": (0.0,)}, "--std must not be zero"),
        ({"quantization": "int4"}, "unknown quantization mode 'int4'"),
        ({"name": "a/b"}, "--name 'a/b': must be a plain file name"),
        ({"keep_float": ("fc",), "auto_keep_float": True}, "use one"),
        ({"quantization": "float16", "explain": True}, "apply to int8"),
    ],
)
def test_bad_values_and_contradictions_are_usage_errors_naming_the_flag(options, message):
    with pytest.raises(UsageError, match=message) as caught:
        ConvertOptions(**options)
    assert caught.value.exit_code == 2


def test_recipe_files_are_checked_field_by_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('calibration_size = "many"\n')
    with pytest.raises(UsageError, match=r"bad.toml: calibration_size has the wrong type \(str: 'many'\)"):
        ConvertOptions.from_file(bad)
    bad.write_text("quantise = 'int8'\n")
    with pytest.raises(UsageError, match=r"bad.toml: unknown option 'quantise'"):
        ConvertOptions.from_file(bad)
    bad.write_text("targets = [\n")
    with pytest.raises(InputError, match=r"bad.toml: not a valid recipe file"):
        ConvertOptions.from_file(bad)
    with pytest.raises(InputError, match=r"nope.json: cannot read recipe"):
        ConvertOptions.from_file(tmp_path / "nope.json")
    with pytest.raises(UsageError, match="unknown option 'quantisation'"):
        pipeline.convert("model.keras", quantisation="int8")


def test_the_manifest_keeps_the_recipe_without_machine_local_settings():
    options = ConvertOptions(quantization="int8", calibration="c.npz", out="/tmp/x", force=True, verbose=True)
    recipe = options.recipe()
    assert set(MACHINE_LOCAL) == {"out", "force", "verbose", "unsafe_load", "on", "ssh_config", "remote_python"}
    assert not set(MACHINE_LOCAL) & set(recipe)
    assert recipe["quantization"] == "int8" and recipe["calibration"] == "c.npz"
    assert ConvertOptions.from_dict(recipe) == ConvertOptions(quantization="int8", calibration="c.npz")


def test_the_readme_example_and_its_recipe_convert_the_same_bundle_again(digits, tmp_path, monkeypatch):
    """README: `edgekit.convert("digits.keras", targets=["rpi4"], quantization="int8", calibration="calib.npz")`;
    the recipe in that bundle's manifest converts the same model again."""
    shutil.copy(digits["model"], tmp_path / "digits.keras")
    shutil.copy(digits["calibration"], tmp_path / "calib.npz")
    monkeypatch.chdir(tmp_path)
    seen = []
    report = edgekit.convert(
        "digits.keras",
        targets=["rpi4"],
        quantization="int8",
        calibration="calib.npz",
        progress=lambda label, done, total: seen.append((label, done, total)),
    )
    assert report.bundles[0].path == "bundles/digits-rpi4" and report.bundles[0].mode == "int8"
    manifest = json.loads((tmp_path / "bundles" / "digits-rpi4" / MANIFEST_NAME).read_text())
    recipe = manifest["conversion"]["recipe"]
    assert recipe == report.recipe.recipe() == report.to_dict()["recipe"]
    assert recipe["targets"] == ["rpi4"] and recipe["calibration"] == "calib.npz" and "out" not in recipe
    # progress: a known total from the first step, every step counted once
    assert all(total is not None for _, _, total in seen)
    assert [done for _, done, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][1] == seen[-1][2]
    assert seen[-1][0] == "bundled rpi4"

    again = pipeline.convert("digits.keras", recipe="bundles/digits-rpi4/edgekit.json", out="again")
    second = json.loads((tmp_path / "again" / "digits-rpi4" / MANIFEST_NAME).read_text())
    assert second["conversion"]["recipe"] == recipe
    for key in ("quantization", "inputs", "outputs", "target", "task"):
        assert second[key] == manifest[key]
    first_model = (tmp_path / "bundles" / "digits-rpi4" / "model.tflite").read_bytes()
    assert (tmp_path / "again" / "digits-rpi4" / "model.tflite").read_bytes() == first_model
    assert again.bundles[0].fidelity == report.bundles[0].fidelity


def test_npy_calibration_calibrates_like_the_same_npz(digits, tmp_path):
    x = np.load(digits["calibration"])["x"]
    np.save(tmp_path / "calib.npy", x)
    common = dict(targets=["x86_64"], quantization="int8", calibration_size=60)
    from_npy = pipeline.convert(digits["model"], calibration=tmp_path / "calib.npy", out=tmp_path / "npy", **common)
    from_npz = pipeline.convert(digits["model"], calibration=digits["calibration"], out=tmp_path / "npz", **common)
    assert from_npy.verification == from_npz.verification and from_npy.verification["samples"] == 60
    assert from_npy.bundles[0].fidelity == from_npz.bundles[0].fidelity
    npy_model = (tmp_path / "npy" / "digits-x86_64" / "model.tflite").read_bytes()
    assert npy_model == (tmp_path / "npz" / "digits-x86_64" / "model.tflite").read_bytes()
