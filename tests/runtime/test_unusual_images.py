"""Images that are merely unusual are not errors: CMYK, 16-bit, palette, alpha and EXIF-rotated images give
the same input, and so the same answer, as their plain twin, both in `run` and in calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from edgekit.bundle import Preprocess, TensorSpec
from edgekit.conversion.contract import ModelInputs
from edgekit.conversion.inputs import load_samples
from edgekit.runtime.preprocess import image_input
from tests.conftest import cli_json

GREY = Preprocess((32, 32), "L")
RGB = Preprocess((24, 20), "RGB", mean=(127.5,), std=(127.5,))
# Orientation tag → the transpose that, applied to the upright picture, gives what the camera stored.
STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
DIGITS = (0, 2, 3, 4, 7, 9)  # asymmetric shapes, so a missed rotation or flip changes the picture


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _twins(source: Path, plain: Path, unusual: Path) -> list[str]:
    """Write each unusual form of one digit to `unusual/` and its plain twin under the same name to `plain/`."""
    digit = Image.open(source).convert("L")
    stem = source.stem
    # Colour content, so CMYK and palette conversions are exercised on more than grey.
    rgb = Image.merge("RGB", (digit, digit.point(lambda v: 255 - v), digit.point(lambda v: v // 2)))
    names = []

    def pair(name: str, twin: Image.Image, odd: Image.Image, **save) -> None:
        twin.save(plain / name)
        odd.save(unusual / name, **save)
        names.append(name)

    pair(f"{stem}-cmyk.tif", rgb, rgb.convert("CMYK"))
    pair(f"{stem}-16bit.png", digit, Image.fromarray(np.asarray(digit).astype(np.uint16) * 257))
    palette = Image.new("P", digit.size)
    palette.putdata(list(digit.getdata()))
    palette.putpalette([v for g in range(256) for v in (g, g, g)])
    pair(f"{stem}-palette.png", digit, palette)
    colour_palette = rgb.quantize(64)
    pair(f"{stem}-palette-rgb.png", colour_palette.convert("RGB"), colour_palette)
    # Alpha: the digit's ink is opaque, the rest transparent (with garbage colour underneath): on white.
    alpha = Image.fromarray(np.where(np.asarray(digit) > 64, 255, 0).astype(np.uint8))
    garbage = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    rgba = Image.composite(rgb, garbage, alpha)
    rgba.putalpha(alpha)
    flat = Image.composite(rgb, Image.new("RGB", rgb.size, (255, 255, 255)), alpha)
    pair(f"{stem}-alpha.png", flat, rgba)
    grey_alpha = Image.merge("LA", (Image.composite(digit, garbage.convert("L"), alpha), alpha))
    pair(f"{stem}-grey-alpha.png", Image.composite(digit, Image.new("L", digit.size, 255), alpha), grey_alpha)
    for orientation, transpose in STORED.items():
        pair(f"{stem}-exif{orientation}.png", digit, digit.transpose(transpose), exif=_exif(orientation))
    return names


@pytest.fixture(scope="module")
def twins(digits, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("twins")
    plain, unusual = root / "plain", root / "unusual"
    plain.mkdir()
    unusual.mkdir()
    names = []
    for d in DIGITS:
        names.extend(_twins(digits["images"] / f"digit-{d}.png", plain, unusual))
    return {"plain": plain, "unusual": unusual, "names": names}


def test_the_unusual_images_really_are_unusual(twins):
    modes = {Image.open(twins["unusual"] / name).mode for name in twins["names"]}
    assert {"CMYK", "I;16", "P", "RGBA", "LA", "L"} <= modes
    stored = Image.open(twins["unusual"] / "digit-3-exif6.png")
    assert stored.getexif()[0x0112] == 6
    assert not np.array_equal(np.asarray(stored), np.asarray(Image.open(twins["plain"] / "digit-3-exif6.png")))


@pytest.mark.parametrize("spec", [GREY, RGB], ids=["grey", "rgb"])
def test_each_gives_exactly_the_input_of_its_plain_twin(twins, spec):
    for name in twins["names"]:
        np.testing.assert_array_equal(
            image_input(twins["unusual"] / name, spec), image_input(twins["plain"] / name, spec), err_msg=name
        )


@pytest.mark.parametrize("spec", [GREY, RGB], ids=["grey", "rgb"])
def test_calibration_sees_the_same_samples(twins, spec):
    tensor = TensorSpec("image", (1, *spec.size, spec.channels), "float32")
    inputs = ModelInputs((tensor,), (spec,))
    unusual = load_samples(twins["unusual"], inputs, limit=1000).x["image"]
    plain = load_samples(twins["plain"], inputs, limit=1000).x["image"]
    assert unusual.shape == (len(twins["names"]), *spec.size, spec.channels)
    np.testing.assert_array_equal(unusual, plain)


def test_run_gives_each_the_answer_of_its_plain_twin(twins, digits_bundles):
    bundle = digits_bundles["bundles"]["int8"]
    code, report = cli_json("run", bundle, twins["plain"], twins["unusual"], "--repeat", "1", "--warmup", "0")
    assert code in (0, 3)  # the budget is not the point here
    answers = {}
    for result in report["results"]:
        path = Path(result["input"])
        answers[(path.parent.name, path.name)] = [(t["index"], t["score"]) for t in result["top_k"]]
    assert len(answers) == 2 * len(twins["names"])
    for name in twins["names"]:
        assert answers[("unusual", name)] == answers[("plain", name)], name


def test_phone_photos_exif_rotated_jpeg(digits, tmp_path):
    """As a phone stores them: JPEG pixels in sensor orientation plus a tag. Lossy, so close, not equal."""
    digit = Image.open(digits["images"] / "digit-7.png").convert("RGB").resize((256, 256), Image.BILINEAR)
    upright = tmp_path / "upright.jpg"
    digit.save(upright, quality=95)
    for orientation, transpose in STORED.items():
        rotated = tmp_path / f"rotated-{orientation}.jpg"
        digit.transpose(transpose).save(rotated, quality=95, exif=_exif(orientation))
        assert ImageOps.exif_transpose(Image.open(rotated)).size == digit.size
        for spec in (GREY, RGB):
            difference = np.abs(image_input(rotated, spec) - image_input(upright, spec)) * spec.std[0]
            assert difference.mean() < 2.0, (orientation, difference.mean())  # in 0-255 pixel levels
