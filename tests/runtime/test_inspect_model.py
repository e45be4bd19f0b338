"""`inspect`: what is inside a bundle or a bare `.tflite`, including the recipe a bundle was converted with."""

from __future__ import annotations

import json
import shutil

import pytest

from edgekit.bundle import SCHEMA_VERSION
from edgekit.runtime.inspect_model import inspect


@pytest.fixture
def bundle_copy(digits_bundles, tmp_path):
    """A copy of the int8 bundle whose manifest the test may edit (it is not among the hashed files)."""
    copy = tmp_path / "digits-int8"
    shutil.copytree(digits_bundles["bundles"]["int8"], copy)
    return copy


def edit_conversion(bundle, change) -> dict:
    path = bundle / "edgekit.json"
    manifest = json.loads(path.read_text())
    change(manifest.setdefault("conversion", {}))
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def test_bundle_shows_its_recipe_and_schema(bundle_copy):
    recipe = {"targets": ["x86_64"], "quantization": "int8", "calibration": "calibration.npz", "mean": [0.0]}
    manifest = edit_conversion(bundle_copy, lambda conversion: conversion.update(recipe=recipe))
    data = json.loads(json.dumps(inspect(bundle_copy).to_dict()))
    assert data["recipe"] == recipe
    assert data["schema"] == manifest["schema"] == SCHEMA_VERSION == 2
    assert data["manifest"]["conversion"]["recipe"] == recipe  # the whole manifest is still there


def test_bundle_without_a_recipe_shows_null(bundle_copy):
    """Bundles made before recipes were recorded."""
    edit_conversion(bundle_copy, lambda conversion: conversion.pop("recipe", None))
    data = inspect(bundle_copy).to_dict()
    assert data["recipe"] is None and data["schema"] == SCHEMA_VERSION


def test_bare_model_has_neither(digits_bundles):
    data = inspect(digits_bundles["bundles"]["int8"] / "model.tflite").to_dict()
    assert data["recipe"] is None and data["schema"] is None and data["manifest"] is None


def test_model_structure(digits_bundles):
    """The digits network as built by samples/digits/train.py: one 32x32 grey input, ten scores."""
    float32 = inspect(digits_bundles["bundles"]["float32"]).to_dict()
    int8 = inspect(digits_bundles["bundles"]["int8"]).to_dict()
    assert [t["shape"] for t in float32["inputs"]] == [[1, 32, 32, 1]] == [t["shape"] for t in int8["inputs"]]
    assert [t["shape"] for t in float32["outputs"]] == [[1, 10]]
    assert float32["inputs"][0]["dtype"] == "float32" and float32["inputs"][0]["scale"] is None
    assert int8["inputs"][0]["dtype"] == "int8" and int8["inputs"][0]["scale"] > 0
    assert "CONV_2D" in float32["operators"] and "FULLY_CONNECTED" in float32["operators"]
    assert set(int8["weight_dtypes"]) >= {"int8"} and int8["weight_bytes"] < float32["weight_bytes"]
