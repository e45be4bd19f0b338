"""Preprocessing: images and arrays become exactly the tensor the manifest describes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.errors import InputError
from edgekit.runtime.preprocess import (
    array_input,
    decode_image,
    dequantize,
    image_input,
    image_pixels,
    load_input,
    quantize,
)
from edgekit.runtime.samples import collect_samples

GREY = Preprocess(size=(32, 32), color="L")
RGB = Preprocess(size=(4, 6), color="RGB", mean=(127.5,), std=(127.5,))
INT8 = TensorSpec("x", (1, 32, 32, 1), "int8", scale=1 / 255, zero_point=-128)
FLOAT = TensorSpec("x", (1, 32, 32, 1), "float32")


def test_normalizes_with_mean_and_std(tmp_path):
    path = tmp_path / "white.png"
    Image.new("RGB", (6, 4), (255, 0, 128)).save(path)
    x = image_input(path, RGB)
    assert x.shape == (1, 4, 6, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 0], [1.0, -1.0, (128 - 127.5) / 127.5], rtol=1e-6)


def test_per_channel_mean_and_std(tmp_path):
    path = tmp_path / "c.png"
    Image.new("RGB", (6, 4), (100, 100, 100)).save(path)
    spec = Preprocess(size=(4, 6), color="RGB", mean=(100.0, 50.0, 0.0), std=(1.0, 2.0, 4.0))
    np.testing.assert_allclose(image_input(path, spec)[0, 0, 0], [0.0, 25.0, 25.0])


def test_resizes_and_converts_colour(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (640, 480), (200, 10, 10)).save(path)
    pixels = image_pixels(path, GREY)
    assert pixels.shape == (32, 32, 1) and pixels.dtype == np.uint8
    expected = round(0.299 * 200 + 0.587 * 10 + 0.114 * 10)
    assert abs(int(pixels.mean()) - expected) <= 2


def test_nchw_layout(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (6, 4)).save(path)
    assert image_input(path, Preprocess((4, 6), "RGB", layout="NCHW")).shape == (1, 3, 4, 6)


def test_quantize_round_trip_is_within_half_a_step():
    x = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(1, 32, 32, 1)
    q = quantize(x, INT8)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    assert np.abs(dequantize(q, INT8) - x).max() <= INT8.scale / 2 + 1e-7
    assert quantize(np.full((1, 32, 32, 1), 9.0, np.float32), INT8).max() == 127  # clipped, not wrapped
    assert quantize(x, FLOAT) is x


def test_npy_inputs(tmp_path):
    pixels = np.full((32, 32, 1), 255, np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    np.testing.assert_allclose(array_input(tmp_path / "pixels.npy", FLOAT, GREY), 1.0)
    np.save(tmp_path / "float.npy", np.full((1, 32, 32, 1), 0.5, np.float32))
    assert array_input(tmp_path / "float.npy", FLOAT, GREY).max() == 0.5
    raw = np.full((1, 32, 32, 1), 7, np.int8)
    np.save(tmp_path / "raw.npy", raw)
    assert array_input(tmp_path / "raw.npy", INT8, GREY).dtype == np.int8
    np.save(tmp_path / "wrong.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(InputError, match="does not match the input shape"):
        array_input(tmp_path / "wrong.npy", FLOAT, GREY)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="objects.npy"):
        array_input(tmp_path / "objects.npy", FLOAT, GREY)


def test_bad_images_are_clear_errors(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InputError, match="broken.png"):
        load_input(tmp_path / "broken.png", FLOAT, GREY)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="unsupported input type"):
        load_input(tmp_path / "notes.txt", FLOAT, GREY)
    Image.new("L", (2, 2)).save(tmp_path / "x.png")
    with pytest.raises(InputError, match="takes .npy arrays"):
        load_input(tmp_path / "x.png", FLOAT, None)


def test_folders_expand_recursively_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.png", "1.png", "b/a.npy"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "readme.txt").write_text("skip me")
    (tmp_path / "b" / "c.npz").write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in collect_samples([tmp_path])] == [
        "1.png",
        "b/2.png",
        "b/a.npy",
        "b/c.npz",
    ]
    with pytest.raises(InputError, match="no such file"):
        collect_samples([tmp_path / "missing.png"])


@pytest.mark.parametrize("orientation, size", [(1, (640, 480)), (6, (480, 640))])
def test_decode_reports_the_upright_size_before_resizing(tmp_path, orientation, size):
    """Boxes and masks go back to the image's own pixels: JPEG draft mode and EXIF turns must not fool it."""
    path = tmp_path / "big.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (640, 480), (10, 20, 30)).save(path, exif=exif)
    pixels, original = decode_image(path, RGB)
    assert pixels.shape == (4, 6, 3) and original == size
    png = tmp_path / "small.png"
    Image.new("L", (7, 5)).save(png)
    assert decode_image(png, GREY)[1] == (7, 5)
