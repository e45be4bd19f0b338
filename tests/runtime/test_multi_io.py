"""Models with several inputs and outputs on the device: samples input by input, every output reported,
`--save-outputs`, refusals that name the input, bench and inspect; on bundles built in multi_bundles.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgekit.bundle import open_bundle
from edgekit.errors import InputError
from edgekit.runtime.benchmark import bench, given_inputs
from edgekit.runtime.inspect_model import inspect
from edgekit.runtime.session import Session, run
from tests.conftest import cli_json, edgekit_cli
from tests.runtime.multi_bundles import SCORES_LABELS, rewrite_manifest, sample_files
from tests.test_cli import assert_one_line_error

ONCE = {"repeat": 1, "warmup": 0}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return sample_files(tmp_path_factory.mktemp("multi-inputs"))


@pytest.fixture(scope="module")
def arrays(files) -> dict:
    """The .npz sample's arrays, also as one .npy per input."""
    with np.load(files["npz"]) as data:
        found = {name: data[name] for name in data.files}
    for name, array in found.items():
        np.save(files["npz"].parent / f"{name}-only.npy", array)
    return found


def outputs_of(result) -> dict:
    return {o.name: np.array(o.values) for o in result.outputs}


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_a_sample_is_the_same_as_npz_as_files_and_as_arrays(multi_bundles, files, arrays, mode):
    bundle = multi_bundles["two_inputs"][mode]
    folder = files["npz"].parent
    by_file = {"image": folder / "image-only.npy", "side": folder / "side-only.npy"}
    report = run(bundle, [files["npz"], by_file, dict(arrays)], **ONCE)
    from_npz, from_files, from_arrays = (outputs_of(r) for r in report.results)
    for name in ("heat map/0", "scores"):
        np.testing.assert_array_equal(from_npz[name], from_files[name])
        np.testing.assert_array_equal(from_npz[name], from_arrays[name])
    assert report.results[1].input == f"image={by_file['image']},side={by_file['side']}"
    cli = run(bundle, input_files=by_file, **ONCE)  # what --input NAME=PATH passes
    np.testing.assert_array_equal(outputs_of(cli.results[0])["scores"], from_npz["scores"])


def test_every_output_in_model_order_with_top_k_where_it_is_a_classifier(multi_bundles, files):
    bundle = multi_bundles["two_inputs"]["int8"]
    result = run(bundle, [files["npz"]], top_k=2, **ONCE).results[0]
    data = result.to_dict()
    manifest = json.loads((bundle / "edgekit.json").read_text())
    assert [o["name"] for o in data["outputs"]] == [t["name"] for t in manifest["outputs"]]
    heat, scores = (next(o for o in data["outputs"] if o["name"] == n) for n in ("heat map/0", "scores"))
    assert heat["shape"] == [1, 16, 16, 1] and heat["size"] == 256 and len(heat["values"]) == 16
    assert "top_k" not in heat and heat["dtype"] == "int8"
    assert "size" not in scores and len(scores["values"]) == 5
    assert [t["label"] for t in scores["top_k"]] == [SCORES_LABELS[t["index"]] for t in scores["top_k"]]
    assert len(scores["top_k"]) == 2 and scores["top_k"][0]["score"] == max(scores["values"])
    assert "top_k" not in data and "detections" not in data  # two outputs: no top-level top-k


def test_two_heads_each_get_top_k_by_rank(multi_bundles, files):
    result = run(multi_bundles["two_heads"]["float32"], [files["grey-0"]], top_k=3, **ONCE).results[0]
    with open_bundle(multi_bundles["two_heads"]["float32"]) as opened:
        assert [o.name for o in result.outputs] == [s.name for s in opened.manifest.outputs]
    for output in result.outputs:  # both rank 2, no labels
        assert len(output.top_k) == 3 and output.top_k[0].label is None
    assert result.top_k is None


def test_int8_agrees_with_float32(multi_bundles, files):
    float_run = run(multi_bundles["two_heads"]["float32"], [files["grey-0"], files["grey-1"]], **ONCE)
    int8_run = run(multi_bundles["two_heads"]["int8"], [files["grey-0"], files["grey-1"]], **ONCE)
    for a, b in zip(float_run.results, int8_run.results):
        for name, values in outputs_of(a).items():
            assert np.abs(outputs_of(b)[name] - values).max() < 0.05, name


def test_session_prepares_one_tensor_per_input_in_the_interpreters_dtype(multi_bundles, files):
    with open_bundle(multi_bundles["two_inputs"]["int8"]) as bundle:
        session = Session(bundle, threads=1)
        tensors = session.prepare_sample({"image": files["photo-0"], "side": files["side"]})
        assert list(tensors) == ["image", "side"]
        assert tensors["image"].dtype == np.int8 and tensors["image"].shape == (1, 16, 16, 3)
        outputs = session.predict(tensors)
        assert [y.shape for y in outputs] == [tuple(s.shape) for s in bundle.manifest.outputs]
        assert all(y.dtype == np.float32 for y in outputs)
        with pytest.raises(InputError, match="2 inputs"):
            session.set_input(tensors["image"])


@pytest.mark.parametrize(
    "sample, fragments",
    [
        ({"image": "photo-0"}, ["lacks input 'side'"]),
        ({"image": "photo-0", "side": "side", "extra": "side"}, ["'extra' is not an input"]),
        ({"image": "side", "side": "side"}, ["input 'image'", "(1, 4) does not match the input shape (1, 16, 16, 3)"]),
        ("photo-0", ["2 inputs (image, side)", ".npz"]),
    ],
)
def test_samples_that_do_not_fit_are_refused_naming_the_input(multi_bundles, files, sample, fragments):
    given = {k: files[v] for k, v in sample.items()} if isinstance(sample, dict) else files[sample]
    with pytest.raises(InputError) as caught:
        run(multi_bundles["two_inputs"]["float32"], [given], **ONCE)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_npz_refusals_name_the_input(multi_bundles, arrays, tmp_path):
    bundle = multi_bundles["two_inputs"]["float32"]
    cases = {
        "missing": ({"image": arrays["image"]}, "lacks input 'side'"),
        "extra": ({**arrays, "y": arrays["side"]}, "'y' is not an input"),
        "shape": ({**arrays, "side": np.zeros((1, 5), np.float32)}, "input 'side': array shape (1, 5)"),
        "dtype": ({**arrays, "side": np.zeros((1, 4), np.int32)}, "dtype int32 does not fit input 'side'"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **content)
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
            run(bundle, [path], **ONCE)
        assert str(path) in str(caught.value)


def test_floats_for_an_integer_input_are_refused(files):
    from edgekit.bundle import TensorSpec
    from edgekit.runtime.samples import prepare_sample

    ids = TensorSpec("ids", (1, 3), "int32")
    with pytest.raises(InputError, match="dtype float64 does not fit input 'ids'"):
        prepare_sample({"ids": np.array([[1.5, 2.0, 3.0]])}, (ids,))
    assert prepare_sample({"ids": np.array([[1, 2, 3]], np.int32)}, (ids,)).tensors["ids"].dtype == np.int32


def test_save_outputs_writes_every_output_in_full_with_safe_names(multi_bundles, files, tmp_path):
    bundle = multi_bundles["two_inputs"]["int8"]
    out = tmp_path / "out"
    report = run(bundle, [files["npz"], {"image": files["photo-1"], "side": files["side"]}], save_outputs=out, **ONCE)
    assert sorted(p.name for p in out.iterdir()) == [
        "pair.heat_map_0.npy",
        "pair.scores.npy",
        "photo-1.heat_map_0.npy",
        "photo-1.scores.npy",
    ]
    heat = np.load(out / "pair.heat_map_0.npy")
    assert heat.dtype == np.float32 and heat.shape == (1, 16, 16, 1)
    first = report.results[0].to_dict()["outputs"]
    np.testing.assert_allclose(
        heat.reshape(-1)[:16], next(o for o in first if o["name"] == "heat map/0")["values"], atol=1e-6
    )


def test_save_outputs_into_a_file_is_refused_before_running(multi_bundles, tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(InputError, match="needs a folder"):
        run(multi_bundles["two_heads"]["float32"], save_outputs=tmp_path / "taken", **ONCE)


def test_save_outputs_never_overwrites_one_sample_with_another(multi_bundles, files, tmp_path):
    twin = tmp_path / "other" / files["grey-0"].name
    twin.parent.mkdir()
    shutil.copy(files["grey-1"], twin)
    out = tmp_path / "out"
    run(multi_bundles["two_heads"]["float32"], [files["grey-0"], twin], save_outputs=out, **ONCE)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["grey-0-2.box.npy", "grey-0-2.class.npy", "grey-0.box.npy", "grey-0.class.npy"]
    assert not np.array_equal(np.load(out / "grey-0.class.npy"), np.load(out / "grey-0-2.class.npy"))


def test_preprocess_is_checked_against_each_inputs_shape(multi_bundles, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(multi_bundles["two_inputs"]["float32"], bundle)

    def wrong(data):
        data["inputs"][0]["preprocess"]["size"] = [8, 8]
        return data

    rewrite_manifest(bundle, wrong)
    with pytest.raises(InputError, match="input 'image': preprocess"):
        run(bundle, **ONCE)


def test_no_inputs_runs_every_input_on_zeros(multi_bundles):
    report = run(multi_bundles["two_inputs"]["int8"], repeat=3, warmup=0)
    assert [r.input for r in report.results] == ["<zeros>"] and len(report.results[0].outputs) == 2


def test_bench_on_a_given_sample(multi_bundles, files):
    bundle = multi_bundles["two_inputs"]["int8"]
    report = bench([bundle, multi_bundles["two_inputs"]["float32"]], inputs=files["npz"], repeat=3, warmup=0)
    assert report.to_dict()["inputs"] == str(files["npz"]) and len(report.rows) == 2
    assert bench([bundle], repeat=3, warmup=0).inputs == "random"
    with open_bundle(bundle) as opened:
        session = Session(opened, threads=1)
        given = given_inputs(session.interpreter, files["npz"], opened.manifest.inputs)
        expected = session.prepare_sample(files["npz"])
    for (_, array), name in zip(given, ["image", "side"]):
        np.testing.assert_array_equal(array, expected[name])
    with pytest.raises(InputError, match="two_heads-int8.*'side' is not an input"):
        bench([multi_bundles["two_heads"]["int8"]], inputs=files["npz"], repeat=3, warmup=0)


def test_inspect_lists_every_tensor_with_its_preprocess_and_the_task(multi_bundles):
    info = inspect(multi_bundles["two_inputs"]["int8"]).to_dict()
    assert info["schema"] == 2 and info["task"] == "classify"
    assert [t["name"] for t in info["inputs"]] == ["image", "side"]
    assert info["inputs"][0]["preprocess"]["color"] == "RGB" and "preprocess" not in info["inputs"][1]
    assert {t["name"]: t.get("labels") for t in info["outputs"]} == {"heat map/0": None, "scores": "scores.txt"}


# --- the command line ---------------------------------------------------------------------------


def test_cli_run_input_by_input_and_save_outputs(multi_bundles, files, tmp_path):
    bundle = multi_bundles["two_inputs"]["int8"]
    out = tmp_path / "saved"
    code, report = cli_json(
        "run", bundle, "--input", f"image={files['photo-0']}", "--input", f"side={files['side']}",
        files["npz"], "--save-outputs", out, "--repeat", "2", "--top-k", "1",
    )  # fmt: skip
    assert code == 0
    assert [r["input"] for r in report["results"]] == [
        str(files["npz"]),
        f"image={files['photo-0']},side={files['side']}",
    ]
    assert all(len(o.get("top_k", [None])) == 1 for r in report["results"] for o in r["outputs"])
    assert len(list(out.glob("*.npy"))) == 4
    table = edgekit_cli("run", bundle, files["npz"], "--repeat", "2")
    assert table.returncode == 0 and "heat map/0 [1, 16, 16, 1]" in table.stdout and "scores:" in table.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--input", "image={photo-0}"], ["lacks input 'side'"]),
        (["--input", "image={photo-0}", "--input", "side={side}", "--input", "other={side}"], ["'other'"]),
        (["--input", "image={side}", "--input", "side={side}"], ["input 'image'", "does not match"]),
        (["--input", "image={photo-0}", "--input", "side={photo-0}"], ["input 'side'", "takes .npy arrays"]),
        (["{photo-0}"], ["2 inputs (image, side)"]),
    ],
)
def test_cli_refusals_are_one_line_naming_the_input(multi_bundles, files, args, fragments):
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    result = edgekit_cli("run", multi_bundles["two_inputs"]["float32"], *args, "--repeat", "1")
    assert_one_line_error(result, 1, *fragments)


def test_cli_input_option_syntax(multi_bundles, files):
    result = edgekit_cli("run", multi_bundles["two_inputs"]["float32"], "--input", str(files["side"]))
    assert result.returncode == 2 and "NAME=PATH" in result.stderr


def test_cli_bench_and_inspect(multi_bundles, files):
    bundle = multi_bundles["two_inputs"]["int8"]
    code, report = cli_json("bench", bundle, "--inputs", files["npz"], "--repeat", "3")
    assert code == 0 and report["inputs"] == str(files["npz"])
    code, report = cli_json(
        "bench", bundle, "--input", f"image={files['photo-0']}", "--input", f"side={files['side']}", "--repeat", "3"
    )
    assert code == 0 and report["inputs"].startswith("image=")
    code, info = cli_json("inspect", bundle)
    assert code == 0 and info["task"] == "classify" and info["schema"] == 2
    table = edgekit_cli("inspect", bundle)
    assert "schema 2" in table.stdout and "task classify" in table.stdout and "RGB 16x16 NHWC" in table.stdout


def test_signed_multi_bundle_verifies_and_runs(multi_bundles, files, tmp_path):
    from edgekit.signing import generate_keypair, sign_bundle, verify_bundle

    bundle = tmp_path / "signed"
    shutil.copytree(multi_bundles["two_inputs"]["int8"], bundle)
    keys = generate_keypair(tmp_path / "lab")
    sign_bundle(bundle, keys.private_key)
    verified = verify_bundle(bundle, keys.public_key).to_dict()
    assert verified["signed"] and verified["signature_verified"] and verified["schema"] == 2
    report = run(bundle, [files["npz"]], trusted_key=keys.public_key, **ONCE)
    assert len(report.results[0].outputs) == 2
