"""Image input: size limits checked before decoding, EXIF orientation, every Pillow mode to RGB."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hf_limber.images import ImageLimits, open_image, prepare_image, to_rgb


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def test_a_tiny_file_declaring_huge_pixels_is_refused_before_decoding():
    bomb = png(Image.new("1", (10_000, 10_000)))  # 100 megapixels in a few kB
    assert len(bomb) < 200_000
    with pytest.raises(ValueError, match=r"100\.0 megapixels, over the limit of 40.*max_pixels"):
        open_image(bomb)
    assert open_image(bomb, ImageLimits(max_pixels=100_000_000, max_aspect_ratio=20)).size == (10_000, 10_000)


def test_a_thin_strip_is_refused_by_its_aspect_ratio(monkeypatch):
    strip = png(Image.new("RGB", (1, 3000), "white"))
    assert len(strip) < 1000
    with pytest.raises(ValueError, match="3000 times apart, over the limit of 20"):
        open_image(strip)
    with pytest.raises(ValueError, match="times apart"):
        prepare_image(Image.new("RGB", (1, 3000)))  # a decoded image would still blow up in the resize
    monkeypatch.setenv("HF_LIMBER_MAX_IMAGE_ASPECT", "5000")
    assert open_image(strip).size == (1, 3000)


def test_exif_orientation_is_applied_as_datasets_applies_it():
    import datasets

    image = Image.new("RGB", (4, 2), "red")
    image.putpixel((0, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise
    data = io.BytesIO()
    image.save(data, format="PNG", exif=exif)
    ours = open_image(data.getvalue())
    theirs = datasets.Image().decode_example({"bytes": data.getvalue(), "path": None})
    assert ours.size == (2, 4) and np.array_equal(np.asarray(to_rgb(ours)), np.asarray(to_rgb(theirs)))
    with_tag = Image.open(io.BytesIO(data.getvalue()))
    assert np.array_equal(np.asarray(prepare_image(with_tag)), np.asarray(to_rgb(theirs)))


def test_float_integer_and_premultiplied_modes_become_sensible_rgb():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    assert np.asarray(to_rgb(unit))[0, :, 0].tolist() == [0, 128, 255]  # not black
    signed = Image.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32), "F")
    assert np.asarray(to_rgb(signed))[0, :, 0].tolist() == [0, 128, 255]  # stretched, not clipped
    counts = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32), "I")
    assert np.asarray(to_rgb(counts))[0, :, 0].tolist() == [0, 100, 255]
    premultiplied = Image.new("La", (1, 1), (100, 200))  # 50% grey at 200/255 alpha, on white
    assert np.asarray(to_rgb(premultiplied)).tolist() == [[[155, 155, 155]]]


def test_the_space_refuses_an_oversized_upload_with_a_clear_message(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces" / "demo"))
    try:
        from serving import BadInput, read_image
    finally:
        sys.path.pop(0)
    path = tmp_path / "huge.png"
    path.write_bytes(png(Image.new("1", (10_000, 10_000))))
    with pytest.raises(BadInput, match="huge.png is 10000 x 10000"):
        read_image(path)
