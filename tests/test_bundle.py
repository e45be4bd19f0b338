"""The bundle format: manifest validation, integrity, atomic writes and archives."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from edgekit.bundle import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    open_bundle,
    pack_archive,
    read_manifest,
    staged_folder,
    unpack_archive,
)
from edgekit.errors import InputError, IntegrityError


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
    assert data["preprocess"] == {"size": [32, 32], "color": "L", "mean": [0.0], "std": [255.0], "layout": "NHWC"}
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
