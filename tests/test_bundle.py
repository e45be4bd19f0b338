"""The bundle format, module by module: manifest validation (manifest.py), reading and integrity
(reader.py), archives and their caps (archive.py), atomic writes (files.py), and what importing the
package pulls in."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from edgekit.bundle import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    open_bundle,
    pack_archive,
    parse_manifest,
    read_manifest,
    staged_folder,
    unpack_archive,
    verify_files,
)
from edgekit.bundle import archive as archive_module
from edgekit.bundle.files import atomic_path, current_umask, write_bytes_atomically
from edgekit.errors import InputError, IntegrityError
from tests.conftest import ROOT


@pytest.fixture()
def bundle_copy(digits_bundles, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(digits_bundles["bundles"]["int8"], folder)
    return folder


def test_manifest_round_trips(digits_bundles):
    folder = digits_bundles["bundles"]["int8"]
    data = json.loads((folder / MANIFEST_NAME).read_text())
    manifest = Manifest.from_dict(data)
    assert manifest.to_dict() == data
    assert data["schema"] == SCHEMA_VERSION
    assert data["quantization"] == "int8"
    assert data["inputs"][0]["dtype"] == "int8" and data["inputs"][0]["scale"] > 0
    assert data["inputs"][0]["preprocess"] == {
        "size": [32, 32],
        "color": "L",
        "mean": [0.0],
        "std": [255.0],
        "layout": "NHWC",
    }
    assert set(data["files"]) == {"model.tflite", "labels.txt"}
    assert data["target"]["name"] == "x86_64" and data["target"]["budget_ms"] == 10.0
    assert data["target"]["runtime_requirement"]
    assert len(data["source"]["sha256"]) == 64


def test_manifest_errors_name_the_field(digits_bundles):
    data = json.loads((digits_bundles["bundles"]["int8"] / MANIFEST_NAME).read_text())
    bad = {**data, "inputs": [{**data["inputs"][0], "shape": "1x32"}]}
    with pytest.raises(InputError, match=r"inputs\[0\]\.shape"):
        Manifest.from_dict(bad)
    with pytest.raises(InputError, match="upgrade edgekit"):
        Manifest.from_dict({**data, "schema": SCHEMA_VERSION + 1})
    with pytest.raises(InputError, match="missing field 'files'"):
        Manifest.from_dict({k: v for k, v in data.items() if k != "files"})


def test_tampered_missing_and_extra_files_are_refused(bundle_copy):
    manifest = read_manifest(bundle_copy)
    with open_bundle(bundle_copy) as bundle:
        assert bundle.manifest == manifest

    (bundle_copy / "extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="extra.bin"), open_bundle(bundle_copy):
        pass
    (bundle_copy / "extra.bin").unlink()

    model = bundle_copy / "model.tflite"
    original = model.read_bytes()
    model.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="model.tflite"), open_bundle(bundle_copy):
        pass
    model.unlink()
    with pytest.raises(IntegrityError, match="missing"), open_bundle(bundle_copy):
        pass


def test_archive_round_trip_has_one_top_folder(bundle_copy, tmp_path):
    archive = pack_archive(bundle_copy, tmp_path / "b.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == {"b"}
    with open_bundle(archive) as bundle:
        assert bundle.manifest == read_manifest(bundle_copy)
    with pytest.raises(InputError, match="already exists"):
        pack_archive(bundle_copy, archive)


def _archive(tmp_path, members):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../escape.txt", tarfile.REGTYPE), ("/abs.txt", tarfile.REGTYPE), ("b/link", tarfile.SYMTYPE)],
)
def test_hostile_archive_members_are_refused(tmp_path, name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    data = b"x"
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
        data = None
    else:
        info.size = 1
    path = _archive(tmp_path, [(info, data)])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(InputError, match="refused") as error:
        unpack_archive(path, dest)
    assert name.lstrip("/") in str(error.value) or name in str(error.value)
    assert not (tmp_path / "escape.txt").exists()


def test_staged_folder_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "bundle"
    with pytest.raises(RuntimeError), staged_folder(final, force=False) as staging:
        (staging / "model.tflite").write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with staged_folder(final, force=False) as staging:
        (staging / "a").write_text("1")
    assert (final / "a").read_text() == "1"
    with pytest.raises(InputError, match="--force"), staged_folder(final, force=False):
        pass
    with staged_folder(final, force=True) as staging:
        (staging / "b").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_staged_folder_is_readable_as_the_umask_allows_and_a_full_disk_is_named(tmp_path):
    final = tmp_path / "bundle"
    with staged_folder(final, force=False) as staging:
        assert stat.S_IMODE(staging.stat().st_mode) == 0o700  # private while half-written
    assert stat.S_IMODE(final.stat().st_mode) == 0o777 & ~current_umask()
    full = pytest.raises(InputError, match="nothing was written there")
    with full as error, staged_folder(tmp_path / "other", force=False) as staging:
        (staging / "model.tflite").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(tmp_path / "other") in str(error.value) and "No space left on device" in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


# --- manifest.py: every error names the file and the field ----------------------------------------


def _manifest(**changes) -> dict:
    """A small valid manifest, with some top-level fields replaced."""
    data = {
        "schema": SCHEMA_VERSION,
        "name": "m",
        "created_by": "test",
        "target": {"name": "x86_64", "budget_ms": 10.0, "threads": 1},
        "quantization": "int8",
        "inputs": [{"name": "in", "shape": [1, 4], "dtype": "int8", "scale": 0.5, "zero_point": 0}],
        "outputs": [{"name": "out", "shape": [1, 2], "dtype": "float32", "scale": None, "zero_point": None}],
        "files": {"model.tflite": {"sha256": "0" * 64, "bytes": 8}},
    }
    return {**data, **changes}


def _parse(data: dict):
    return parse_manifest(json.dumps(data).encode(), "b/edgekit.json")


def test_a_hand_written_manifest_parses_and_round_trips():
    manifest = _parse(_manifest(preprocess={"size": [4, 4], "color": "RGB", "mean": [1, 2, 3], "std": [2]}))
    assert manifest.inputs[0].quantized and not manifest.outputs[0].quantized
    assert manifest.preprocess.channels == 3 and manifest.preprocess.mean == (1.0, 2.0, 3.0)
    assert manifest.budget_ms == 10.0 and manifest.threads == 1 and manifest.task == "classify"
    assert parse_manifest(manifest.to_json().encode(), "again") == manifest


def test_schema_1_manifests_read_as_schema_2():
    """edgekit 0.1 wrote `task` as classification/generic and one top-level `preprocess`."""
    old = _manifest(
        schema=1, task="classification", preprocess={"size": [2, 2], "color": "L", "mean": [0], "std": [255]}
    )
    manifest = _parse(old)
    assert manifest.schema == 1 and manifest.task == "classify"
    assert manifest.inputs[0].preprocess == manifest.preprocess and manifest.preprocess.size == (2, 2)
    assert _parse(_manifest(schema=1, task="generic")).task == "raw"
    with pytest.raises(InputError, match="task"):
        _parse(_manifest(schema=2, task="classification"))


def test_schema_2_keeps_preprocessing_per_input_and_labels_per_output():
    image = {
        "name": "image",
        "shape": [1, 2, 2, 1],
        "dtype": "float32",
        "scale": None,
        "zero_point": None,
        "preprocess": {"size": [2, 2], "color": "L", "mean": [0], "std": [255]},
    }
    side = {"name": "side", "shape": [1, 3], "dtype": "float32", "scale": None, "zero_point": None}
    head = {**TENSOR, "name": "kind", "labels": "kinds.txt"}
    files = {"model.tflite": {"sha256": "0" * 64, "bytes": 8}, "kinds.txt": {"sha256": "1" * 64, "bytes": 4}}
    manifest = _parse(_manifest(inputs=[image, side], outputs=[head, TENSOR], files=files, task="raw"))
    assert manifest.preprocess.size == (2, 2) and manifest.inputs[1].preprocess is None
    assert manifest.output_labels(0) == "kinds.txt" and manifest.output_labels(1) is None
    assert parse_manifest(manifest.to_json().encode(), "again") == manifest
    with pytest.raises(InputError, match=r"outputs\[0\].labels"):
        _parse(_manifest(outputs=[{**head, "labels": "missing.txt"}], files=files))
    with pytest.raises(InputError, match="named 'image'"):
        _parse(_manifest(inputs=[image, {**side, "name": "image"}], files=files))


TENSOR = {"name": "out", "shape": [1, 2], "dtype": "float32", "scale": None, "zero_point": None}
RGB = {"size": [4, 4], "color": "RGB", "mean": [0], "std": [255]}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"outputs": [TENSOR, {**TENSOR, "scale": -1.0, "zero_point": 0}]}, "outputs[1].scale"),
        ({"inputs": [{**TENSOR, "dtype": "int7"}]}, "inputs[0].dtype"),
        ({"inputs": [{**TENSOR, "shape": [1, 0]}]}, "inputs[0].shape"),
        ({"outputs": [{**TENSOR, "scale": 0.5}]}, "outputs[0]: scale and zero_point come together"),
        ({"preprocess": {**RGB, "mean": [1, 2]}}, "preprocess.mean"),
        ({"preprocess": {**RGB, "std": [0]}}, "preprocess.std"),
        ({"preprocess": {**RGB, "color": "CMYK"}}, "preprocess.color"),
        ({"target": {"threads": 0}}, "target.threads"),
        ({"target": {"budget_ms": -1}}, "target.budget_ms"),
        ({"files": {"../model.tflite": {"sha256": "0" * 64, "bytes": 1}}}, "files['../model.tflite']"),
        ({"files": {"model.tflite": {"sha256": "A" * 64, "bytes": 1}}}, "files['model.tflite'].sha256"),
        ({"files": {"model.tflite": {"sha256": "0" * 64, "bytes": -1}}}, "files['model.tflite'].bytes"),
        ({"files": {"labels.txt": {"sha256": "0" * 64, "bytes": 1}}}, "files: must list model.tflite"),
        ({"labels": "labels.txt"}, "labels:"),
        ({"task": "classification"}, "task:"),
        ({"name": ""}, "name: must not be empty"),
        ({"quantization": 8}, "quantization: expected a string"),
        ({"schema": 0}, "schema: unknown bundle schema"),
    ],
)
def test_manifest_errors_name_the_file_and_the_field(changes, field):
    with pytest.raises(InputError) as error:
        _parse(_manifest(**changes))
    message = str(error.value)
    assert message.startswith("b/edgekit.json: ") and field in message, message


def test_manifest_bytes_that_could_mean_two_things_are_refused():
    valid = json.dumps(_manifest())
    cases = {
        valid[:-1] + ', "name": "other"}': "duplicate key 'name'",
        valid.replace('"budget_ms": 10.0', '"budget_ms": NaN'): "NaN is not a number JSON allows",
        "\ufeff" + valid: "not valid JSON",
    }
    for text, message in cases.items():
        with pytest.raises(InputError, match=message):
            parse_manifest(text.encode(), "b/edgekit.json")
    with pytest.raises(InputError, match="not UTF-8"):
        parse_manifest(b"\xff" + valid.encode(), "b/edgekit.json")
    with pytest.raises(InputError, match="larger than"):
        parse_manifest(b" " * ((1 << 20) + 1), "b/edgekit.json")


# --- reader.py ------------------------------------------------------------------------------------


def _bundle_folder(tmp_path):
    """A folder holding a (fake) model and a manifest listing it."""
    folder = tmp_path / "hand"
    folder.mkdir()
    model = b"\0\0\0\0TFL3rest"
    (folder / "model.tflite").write_bytes(model)
    files = {"model.tflite": {"sha256": hashlib.sha256(model).hexdigest(), "bytes": len(model)}}
    (folder / MANIFEST_NAME).write_text(json.dumps(_manifest(files=files)))
    return folder


def test_reading_checks_every_file_and_refuses_links(tmp_path):
    folder = _bundle_folder(tmp_path)
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    with open_bundle(folder) as bundle:
        assert bundle.manifest == manifest and bundle.model_path == folder / "model.tflite"
        assert bundle.labels() is None and bundle.origin == str(folder)

    (folder / "link").symlink_to(folder / "model.tflite")
    with pytest.raises(IntegrityError, match=r"link: is a symbolic link"):
        verify_files(folder, manifest)
    (folder / "link").unlink()

    (folder / "model.tflite").write_bytes(b"\0\0\0\0TFL3resT")  # same size, other bytes
    with pytest.raises(IntegrityError, match="SHA-256 differs"):
        verify_files(folder, manifest)
    with open_bundle(folder, verify=False) as bundle:  # the manifest alone still reads
        assert bundle.manifest == manifest

    (folder / MANIFEST_NAME).unlink()
    (folder / MANIFEST_NAME).symlink_to(tmp_path)
    with pytest.raises(IntegrityError, match="edgekit.json: not a regular file"):
        read_manifest(folder)
    (folder / MANIFEST_NAME).unlink()
    with pytest.raises(InputError, match="not a bundle \\(no edgekit.json\\)"):
        read_manifest(folder)
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(InputError, match="a bare .tflite model"), open_bundle(tmp_path / "m.tflite"):
        pass


# --- archive.py: pack atomically, unpack with caps ------------------------------------------------


def test_packing_is_atomic_and_readable(tmp_path, monkeypatch):
    folder = _bundle_folder(tmp_path)
    archive = pack_archive(folder, tmp_path / "hand.tar.gz")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o644
    with tarfile.open(archive) as tar:
        assert all(m.uid == 0 and m.mtime == 0 and m.mode == 0o644 for m in tar.getmembers())

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "addfile", disk_full)
    with pytest.raises(InputError, match="nothing was written there"):
        pack_archive(folder, tmp_path / "full.tar.gz")
    with pytest.raises(InputError, match="nothing was written there"):
        pack_archive(folder, archive, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hand", "hand.tar.gz"]
    with open_bundle(archive) as bundle:  # the archive a failed overwrite left alone still opens
        assert bundle.origin == f"{archive}:hand"


def _file(name: str, data: bytes = b"x", **fields) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_file(f"b/f{i}") for i in range(65)], "more than 64 members"),
        ([_file("b/a"), _file("c/a")], "exactly one top-level folder (found 2)"),
        ([_file("b/a"), _file("b/a")], "member 'b/a' appears twice"),
        ([_file("b/sub/a")], "member 'b/sub/a' must be a file inside the top-level folder"),
        ([_file("loose")], "member 'loose' must be a file inside the top-level folder"),
        ([_file("b/./a")], "member 'b/./a' has an unsafe path"),
        ([_file("b/hard", b"", type=tarfile.LNKTYPE, linkname="b/a")], "member 'b/hard' is a hard link"),
        ([_file("b/fifo", b"", type=tarfile.FIFOTYPE)], "member 'b/fifo' is a FIFO"),
        ([_file("b/c", b"", type=tarfile.CHRTYPE)], "is a character device"),
        ([_file("b/a", pax_headers={"comment": "x" * (2 << 20)})], "a header or block of"),
    ],
)
def test_archive_members_past_the_caps_or_of_the_wrong_kind_are_refused(tmp_path, members, message):
    path = _archive(tmp_path, members)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(InputError, match="refused|exactly one") as error:
        unpack_archive(path, dest)
    assert str(path) in str(error.value) and message in str(error.value), str(error.value)
    assert list(dest.iterdir()) == []


def test_the_unpacked_size_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(archive_module, "MAX_ARCHIVE_BYTES", 100)
    path = _archive(tmp_path, [_file("b/a", b"a" * 60), _file("b/c", b"c" * 60)])
    with pytest.raises(InputError, match="member 'b/c' takes it past 100 unpacked bytes, refused"):
        unpack_archive(path, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz"]


def test_damaged_archives_are_named(tmp_path):
    path = tmp_path / "b.tar.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(InputError, match="not a valid bundle archive"):
        unpack_archive(path, tmp_path)


# --- files.py: the one family of atomic writes -----------------------------------------------------


@pytest.fixture()
def umask():
    """Set the process umask for one test, and put it back."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def test_atomic_path_is_private_until_renamed_and_then_gets_its_mode(tmp_path, umask):
    umask(0)  # even with nothing masked, the half-written file is the owner's alone
    final = tmp_path / "secret.key"
    with atomic_path(final, mode=0o600) as tmp:
        assert tmp.parent == tmp_path and not final.exists()
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600
        tmp.write_bytes(b"key")
    assert final.read_bytes() == b"key" and stat.S_IMODE(final.stat().st_mode) == 0o600

    umask(0o027)
    assert current_umask() == 0o027 and current_umask() == 0o027  # reading it leaves it as it was
    with atomic_path(tmp_path / "plain.txt") as tmp:
        tmp.write_text("plain")
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "secret.key"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out.csv"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    with pytest.raises(InputError, match="nothing was written there") as error, atomic_path(final) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(final) in str(error.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="does not exist"), atomic_path(tmp_path / "no" / "out.csv"):
        pass


def test_write_bytes_atomically_replaces_content_and_mode(tmp_path):
    final = tmp_path / "k"
    final.write_bytes(b"old")
    final.chmod(0o644)
    assert write_bytes_atomically(final, b"new", mode=0o600) == final
    assert final.read_bytes() == b"new" and stat.S_IMODE(final.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [final]


# --- the package: what importing it costs a device ------------------------------------------------


def test_importing_the_bundle_package_pulls_in_no_archive_or_signing_code():
    script = (
        "import json, sys\n"
        "from edgekit.bundle import open_bundle, Manifest, TensorSpec\n"
        "heavy = ('tarfile', 'gzip', 'cryptography', 'numpy', 'edgekit.signing', 'edgekit.bundle.archive')\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "from edgekit.bundle import pack_archive, MAX_ARCHIVE_MEMBERS\n"
        "print(json.dumps([before, MAX_ARCHIVE_MEMBERS, 'edgekit.bundle.archive' in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[], 64, True]
