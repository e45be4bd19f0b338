"""Property-based tests: random manifests, random bytes as models, images, arrays and archives. Whatever
comes in, the loaders either accept it or raise a clean EdgekitError; nothing else, and nothing written
outside the folder they were given."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgekit.bundle import (
    MANIFEST_NAME,
    MODEL_NAME,
    FileEntry,
    Manifest,
    Preprocess,
    TensorSpec,
    file_entry,
    open_bundle,
    pack_archive,
    parse_manifest,
    unpack_archive,
)
from edgekit.errors import EdgekitError, InputError
from edgekit.runtime.preprocess import array_input, image_pixels

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Parsing a manifest takes microseconds: many more examples cost nothing.
FUZZ_MANY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The model loaders are native code: fixed examples, so a crash could never make CI flaky.
FUZZ_NATIVE = settings(max_examples=40, deadline=None, derandomize=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def valid_manifest() -> dict:
    return Manifest(
        name="digits",
        created_by="edgekit test",
        target={"name": "x86_64", "threads": 2, "budget_ms": 10.0},
        quantization="int8",
        inputs=(TensorSpec("image", (1, 32, 32, 1), "int8", 0.0039, -128),),
        outputs=(TensorSpec("probs", (1, 10), "int8", 0.0039, -128),),
        files={MODEL_NAME: FileEntry("0" * 64, 10), "labels.txt": FileEntry("1" * 64, 20)},
        preprocess=Preprocess((32, 32), "L"),
        labels="labels.txt",
        source={"file": "digits.keras"},
    ).to_dict()


def paths_of(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, (*prefix, index))


ALL_PATHS = list(paths_of(valid_manifest()))
# Values of the wrong kind that look almost right: what hand-edited or hostile manifests hold.
NASTY = [
    None,
    True,
    0,
    -1,
    1,
    2.5,
    1e308,
    "",
    "x",
    "fast",
    "int8",
    "RGB",
    "../x",
    [],
    {},
    [0],
    [1, 2],
    [True],
    {"a": 1},
]
nasty_values = st.sampled_from(NASTY)


@st.composite
def mutated_manifests(draw) -> dict:
    data = valid_manifest()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        if not path:
            return draw(json_values)
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(nasty_values | json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return data


def assert_usable(manifest: Manifest) -> None:
    """A manifest that validated must be safe for everything the device half does with it."""
    assert manifest.budget_ms > 0 and manifest.threads >= 1
    for tensor in (*manifest.inputs, *manifest.outputs):
        np.dtype(tensor.dtype)
        assert all(d > 0 for d in tensor.shape)
    if manifest.preprocess is not None:
        assert len(manifest.preprocess.mean) in (1, manifest.preprocess.channels)
        assert all(s != 0 for s in manifest.preprocess.std)
    for name in manifest.files:
        assert "/" not in name and name not in ("", ".", "..")
    assert parse_manifest(manifest.to_json().encode(), "again") == manifest


@FUZZ_MANY
@given(mutated_manifests())
def test_mutated_manifests_validate_or_fail_cleanly(data):
    try:
        content = json.dumps(data).encode()
    except ValueError:
        return
    try:
        manifest = parse_manifest(content, MANIFEST_NAME)
    except InputError as error:
        assert str(error).startswith(MANIFEST_NAME)
        return
    assert_usable(manifest)


def test_every_field_replaced_by_every_wrong_kind_or_removed():
    """Exhaustive where random sampling is thin: each field of a valid manifest, one change at a time."""
    outcomes = {"valid": 0, "refused": 0}
    for path in ALL_PATHS[1:]:
        for value in [*NASTY, KeyError]:
            data = valid_manifest()
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            if value is KeyError:
                if not isinstance(parent, dict):
                    continue
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            try:
                manifest = parse_manifest(json.dumps(data).encode(), MANIFEST_NAME)
            except InputError as error:
                assert str(error).startswith(MANIFEST_NAME + ": ")
                outcomes["refused"] += 1
                continue
            assert_usable(manifest)
            outcomes["valid"] += 1
    assert outcomes["refused"] > 500 and outcomes["valid"] > 50, outcomes


@FUZZ_MANY
@given(st.binary(max_size=512) | json_values.map(lambda v: json.dumps(v).encode()))
def test_random_manifest_bytes_fail_cleanly(content):
    with contextlib.suppress(InputError):
        assert_usable(parse_manifest(content, MANIFEST_NAME))


def test_deeply_nested_and_huge_manifests_are_refused():
    with pytest.raises(InputError, match="nested too deeply"):
        parse_manifest(b"[" * 200_000 + b"]" * 200_000, MANIFEST_NAME)
    with pytest.raises(InputError, match="larger than"):
        parse_manifest(b" " * (2 << 20), MANIFEST_NAME)
    with pytest.raises(InputError, match="not a number JSON allows"):
        parse_manifest(json.dumps({**valid_manifest(), "schema": float("nan")}).encode(), MANIFEST_NAME)


# --- models ----------------------------------------------------------------------------------------------

TFLITE_HEADER = b"\x1c\x00\x00\x00TFL3"


@FUZZ_NATIVE
@given(st.binary(max_size=2048) | st.binary(max_size=2048).map(lambda b: TFLITE_HEADER + b))
def test_random_bytes_as_models_fail_cleanly(content):
    from edgekit.runtime.inspect_model import inspect_tflite
    from edgekit.runtime.interpreter import find_runtime, load_interpreter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(content)
        for load in (lambda: load_interpreter(str(path), 1, find_runtime()), lambda: inspect_tflite(path)):
            try:
                load()
            except EdgekitError as error:
                assert str(path) in str(error)


@FUZZ_NATIVE
@given(st.data())
def test_truncated_and_damaged_real_models_fail_cleanly(digits_bundles, data):
    from edgekit.runtime.interpreter import find_runtime, load_interpreter

    model = (digits_bundles["bundles"]["int8"] / MODEL_NAME).read_bytes()
    content = bytearray(model[: data.draw(st.integers(0, len(model)))])
    for _ in range(data.draw(st.integers(0, 4))):
        if content:
            content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(bytes(content))
        try:
            load_interpreter(str(path), 1, find_runtime())
        except EdgekitError as error:
            assert str(path) in str(error)


# --- images and arrays ---------------------------------------------------------------------------------


def _sample_images() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")
    made = {}
    for name, image, fmt in (
        ("a.png", rgb, "PNG"),
        ("a.jpg", rgb, "JPEG"),
        ("a.gif", rgb.convert("P"), "GIF"),
        ("a.bmp", rgb, "BMP"),
        ("a.tif", rgb.convert("CMYK"), "TIFF"),
        ("a.webp", rgb, "WEBP"),
        ("a.ppm", rgb, "PPM"),
        ("b.png", rgb.convert("RGBA"), "PNG"),
        ("c.png", Image.fromarray((rng.integers(0, 65536, (12, 16))).astype(np.uint16)), "PNG"),
    ):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        made[name] = buffer.getvalue()
    return made


SAMPLE_IMAGES = _sample_images()
SPECS = (Preprocess((8, 8), "L"), Preprocess((10, 6), "RGB"))


@st.composite
def damaged(draw, original: bytes) -> bytes:
    content = bytearray(original[: draw(st.integers(0, len(original)))] if draw(st.booleans()) else original)
    for _ in range(draw(st.integers(0, 6))):
        if not content:
            break
        position = draw(st.integers(0, len(content) - 1))
        if draw(st.booleans()):
            content[position] = draw(st.integers(0, 255))
        else:
            content[position:position] = draw(st.binary(min_size=1, max_size=8))
    return bytes(content)


@FUZZ
@given(st.data())
def test_damaged_and_random_images_decode_or_fail_cleanly(data):
    name = data.draw(st.sampled_from(sorted(SAMPLE_IMAGES)))
    content = data.draw(damaged(SAMPLE_IMAGES[name]) | st.binary(max_size=256))
    spec = data.draw(st.sampled_from(SPECS))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        try:
            pixels = image_pixels(path, spec)
        except InputError as error:
            assert str(error).startswith(str(path))
            return
        assert pixels.dtype == np.uint8 and pixels.shape == (*spec.size, spec.channels)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


SAMPLE_ARRAYS = [
    _npy(np.zeros((1, 4, 4, 1), np.float32)),
    _npy(np.full((4, 4, 1), 7, np.uint8)),
    _npy(np.arange(16, dtype=np.int8).reshape(1, 4, 4, 1)),
]
ARRAY_INPUT = TensorSpec("x", (1, 4, 4, 1), "int8", 0.5, 0)


@FUZZ_MANY
@given(st.data())
def test_damaged_and_random_npy_files_load_or_fail_cleanly(data):
    original = data.draw(st.sampled_from(SAMPLE_ARRAYS))
    content = data.draw(damaged(original) | st.binary(max_size=256))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        path.write_bytes(content)
        try:
            array = array_input(path, ARRAY_INPUT, Preprocess((4, 4), "L"))
        except InputError as error:
            assert str(error).startswith(str(path))
            return
        assert array.shape == ARRAY_INPUT.shape and array.dtype in (np.float32, np.int8)


# --- archives --------------------------------------------------------------------------------------------


def _bundle_archive() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "b"
        folder.mkdir()
        (folder / MODEL_NAME).write_bytes(TFLITE_HEADER + bytes(range(256)) * 4)
        (folder / "labels.txt").write_text("a\nb\n")
        data = valid_manifest()
        data["files"] = {p.name: file_entry(p).to_dict() for p in folder.iterdir()}
        (folder / MANIFEST_NAME).write_text(json.dumps(data))
        return pack_archive(folder, Path(tmp) / "b.tar.gz").read_bytes()


SAMPLE_ARCHIVE = _bundle_archive()


def _inside(root: Path, folder: Path) -> bool:
    return all(p.resolve().is_relative_to(folder.resolve()) and not p.is_symlink() for p in root.rglob("*"))


@FUZZ
@given(damaged(SAMPLE_ARCHIVE) | st.binary(max_size=512))
def test_damaged_and_random_archives_open_or_fail_cleanly(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.tar.gz"
        path.write_bytes(content)
        try:
            with open_bundle(path) as bundle:
                assert bundle.manifest.name == "digits"
        except EdgekitError as error:
            assert str(error).startswith(str(path))
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["b.tar.gz"]


member_names = st.lists(
    st.sampled_from(["b", "..", ".", "", "/", "etc", "model.tflite", "a\\b", "x" * 300]), min_size=1, max_size=4
).map("/".join)
member_kinds = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
)


@FUZZ
@given(st.lists(st.tuples(member_names, member_kinds, st.binary(max_size=64)), max_size=6))
def test_random_archive_layouts_unpack_inside_or_fail_cleanly(members):
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp) / "sandbox"
        dest = sandbox / "dest"
        dest.mkdir(parents=True)
        archive = Path(tmp) / "a.tar.gz"
        with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
            for name, kind, content in members:
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = "../../etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
                info.size = len(content) if kind == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)
        try:
            root = unpack_archive(archive, dest)
        except InputError as error:
            assert str(error).startswith(str(archive))
        else:
            assert root.parent == dest and root.is_dir()
        assert [p.name for p in sandbox.iterdir()] == ["dest"]
        assert _inside(dest, dest)
