"""Boxes drawn on a copy of the image, and segmentation masks as PNGs at the image's size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.errors import InputError
from edgekit.runtime.detect import Detection
from edgekit.runtime.draw import class_colour, draw_boxes, image_size
from edgekit.runtime.masks import save_mask


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".partial")]


def test_draw_boxes_writes_a_copy_with_the_boxes(tmp_path):
    source = tmp_path / "scene.jpg"
    Image.new("RGB", (120, 80), (0, 0, 0)).save(source)
    found = [Detection("circle", 1, 0.9, (20.0, 30.0, 60.0, 70.0)), Detection(None, 0, 0.5, (0.0, 0.0, 10.0, 10.0))]
    out = draw_boxes(source, found, tmp_path / "scene.boxes.png")
    assert out == tmp_path / "scene.boxes.png"
    with Image.open(out) as drawn:
        assert drawn.format == "PNG" and drawn.size == (120, 80)
        pixels = np.asarray(drawn.convert("RGB"))
    assert tuple(pixels[50, 20]) == class_colour(1)  # left edge of the first box
    assert tuple(pixels[50, 40]) == (0, 0, 0)  # inside stays as it was
    assert leftovers(tmp_path) == []
    with Image.open(source) as original:  # the input is left alone
        assert np.asarray(original).max() < 10


def test_draw_boxes_follows_exif_orientation(tmp_path):
    source = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 100x50, shown 50x100
    Image.new("RGB", (100, 50)).save(source, exif=exif)
    assert image_size(source) == (50, 100)
    with Image.open(draw_boxes(source, [], tmp_path / "turned.boxes.png")) as drawn:
        assert drawn.size == (50, 100)


def test_draw_boxes_refuses_unreadable_images(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.png: cannot read image"):
        draw_boxes(bad, [], tmp_path / "bad.boxes.png")
    assert not (tmp_path / "bad.boxes.png").exists()


def test_one_channel_mask_is_thresholded_and_resized(tmp_path):
    output = np.zeros((1, 4, 4, 1), dtype=np.float32)
    output[0, :2, :2, 0] = 0.8  # top-left quarter
    output[0, 3, 3, 0] = 0.5  # not above the threshold
    out = save_mask(output, (8, 12), tmp_path / "x.mask.png")
    with Image.open(out) as mask:
        assert mask.mode == "L" and mask.size == (8, 12)
        pixels = np.asarray(mask)
    assert pixels[:6, :4].min() == 255 and pixels[6:, :].max() == 0 and pixels[:, 4:].max() == 0
    assert leftovers(tmp_path) == []


def test_class_mask_is_an_argmax_palette_image(tmp_path):
    output = np.zeros((1, 2, 3, 3), dtype=np.float32)
    output[0, 0, :, 1] = 1.0  # top row class 1
    output[0, 1, 2, 2] = 1.0  # bottom right class 2
    with Image.open(save_mask(output, None, tmp_path / "y.mask.png")) as mask:
        assert mask.mode == "P" and mask.size == (3, 2)
        assert np.asarray(mask).tolist() == [[1, 1, 1], [0, 0, 2]]
        assert mask.getpalette()[:3] == [0, 0, 0]


def test_mask_refuses_other_shapes(tmp_path):
    with pytest.raises(InputError, match="expected an output"):
        save_mask(np.zeros((1, 2, 3, 4, 5)), None, tmp_path / "z.mask.png")
