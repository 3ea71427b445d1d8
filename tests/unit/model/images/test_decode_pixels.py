"""model.images.tensors: the pixels that come out of the one door for image bytes: EXIF orientation, transparency
composited on white, bit depths scaled not clipped, and colour spaces (the formats, sizes and broken files are in
test_images.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from image_bytes import encode, pixels, png16, tiff_rgb16
from PIL import Image

from model.images.decode import decode_image

# ----------------------------------------------------------------------------------- orientation


def _left_red_right_blue(w=40, h=20) -> Image.Image:
    img = Image.new("RGB", (w, h), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, w // 2, h))
    return img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_6_rotates_clockwise(fmt):
    img = _left_red_right_blue()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = decode_image(encode(img, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {})))
    assert out.size == (20, 40)  # portrait now
    arr = pixels(out)
    assert arr[5, 10, 0] > 200 and arr[5, 10, 2] < 60  # the left (red) half is now on top
    assert arr[35, 10, 2] > 200 and arr[35, 10, 0] < 60  # the right (blue) half at the bottom


@pytest.mark.parametrize("orientation, top_left", [(1, "red"), (3, "blue"), (8, "blue")])
def test_other_exif_orientations(orientation, top_left):
    exif = Image.Exif()
    exif[0x0112] = orientation
    arr = pixels(decode_image(encode(_left_red_right_blue(), "PNG", exif=exif.tobytes())))
    assert (arr[2, 2, 0] > 200) == (top_left == "red")


def test_broken_exif_is_ignored_not_fatal():
    data = encode(Image.new("RGB", (16, 16), (10, 200, 10)), "JPEG", exif=b"Exif\x00\x00MM\x00*\xff\xff\xff\xff")
    assert pixels(decode_image(data))[8, 8][1] > 180


# ----------------------------------------------------------------------------------- transparency


def test_transparent_red_composites_to_white_not_red():
    arr = np.zeros((20, 20, 4), np.uint8)
    arr[:, :10] = (255, 0, 0, 0)  # fully transparent, hidden colour red
    arr[:, 10:] = (0, 0, 255, 255)  # opaque blue
    out = pixels(decode_image(encode(Image.fromarray(arr, "RGBA"), "PNG")))
    assert out[10, 3].tolist() == [255, 255, 255]
    assert out[10, 16].tolist() == [0, 0, 255]


def test_half_transparent_green_is_mixed_with_white():
    img = Image.new("RGBA", (8, 8), (0, 255, 0, 128))
    out = pixels(decode_image(encode(img, "PNG")))[4, 4]
    assert np.abs(out - [127, 255, 127]).max() <= 2


def test_transparent_pixels_do_not_leak_when_a_big_image_is_reduced():
    arr = np.zeros((2400, 2400, 4), np.uint8)
    arr[:, :1200] = (255, 0, 0, 0)  # transparent red
    arr[:, 1200:] = (0, 0, 0, 255)  # opaque black
    out = pixels(decode_image(encode(Image.fromarray(arr, "RGBA"), "PNG", compress_level=1)))
    assert out[out.shape[0] // 2, 5].tolist() == [255, 255, 255]
    assert out[out.shape[0] // 2, out.shape[1] // 2 - 2].tolist() == [255, 255, 255]  # edge: no pink fringe


def test_la_transparency_composites_to_white():
    img = Image.new("LA", (8, 8), (30, 0))
    assert pixels(decode_image(encode(img, "PNG")))[4, 4].tolist() == [255, 255, 255]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_composites_to_white(fmt):
    img = Image.new("P", (10, 10), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)  # index 1 = red
    img.paste(0, (0, 0, 5, 10))  # left half index 0 = black (opaque)
    data = encode(img, fmt, transparency=1)  # red (index 1) is the transparent index
    out = pixels(decode_image(data))
    assert out[5, 8].tolist() == [255, 255, 255]
    assert out[5, 1].tolist() == [0, 0, 0]


def test_rgb_png_with_trns_colour_key_composites_to_white():
    img = Image.new("RGB", (8, 8), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 4, 8))
    out = pixels(decode_image(encode(img, "PNG", transparency=(255, 0, 0))))
    assert out[4, 6].tolist() == [255, 255, 255] and out[4, 1].tolist() == [0, 0, 255]


# ----------------------------------------------------------------------------------- bit depth


def test_16bit_grey_png_ramp_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    grey = pixels(decode_image(data))[4, :, 0]
    assert grey[0] == 0 and grey[-1] == 255
    assert np.all(np.diff(grey) >= 0) and len(np.unique(grey)) >= 60  # a ramp, not a white wall
    assert abs(int(grey[32]) - round(ramp[4, 32] / 257)) <= 1


def test_16bit_grey_tiff_big_endian_is_scaled():
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (4, 1))
    big_endian = Image.frombytes("I;16B", (32, 4), ramp.astype(">u2").tobytes())
    data = encode(big_endian, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I;16B"
    grey = pixels(decode_image(data))[2, :, 0]
    assert grey[0] == 0 and grey[-1] == 255 and np.all(np.diff(grey) > 0)


@pytest.mark.parametrize("writer", [png16, tiff_rgb16], ids=["png", "tiff"])
def test_16bit_rgb_keeps_its_contrast_and_channels(writer):
    ramp = np.linspace(0, 65535, 64).astype(np.uint16)
    arr = np.zeros((4, 64, 3), np.uint16)
    arr[..., 0] = ramp  # red ramps up
    arr[..., 2] = ramp[::-1]  # blue ramps down
    out = pixels(decode_image(writer(arr)))[2]
    assert out[0].tolist() == [0, 0, 255] and out[-1].tolist() == [255, 0, 0]
    assert np.all(np.diff(out[:, 0]) >= 0) and len(np.unique(out[:, 0])) >= 60


def test_float_tiff_in_0_1_is_scaled():
    data = encode(Image.fromarray(np.tile(np.linspace(0, 1, 16, dtype=np.float32), (4, 1)), "F"), "TIFF")
    grey = pixels(decode_image(data))[1, :, 0]
    assert grey[0] == 0 and grey[-1] == 255


# ----------------------------------------------------------------------------------- colour spaces


def test_cmyk_jpeg_with_adobe_marker_is_not_inverted():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)  # pure red ink
    assert b"Adobe" in data  # Photoshop-style APP14: the CMYK samples are stored inverted
    out = pixels(decode_image(data))[8, 8]
    assert out[0] > 230 and out[1] < 30 and out[2] < 30


def test_cmyk_tiff_converts_to_rgb():
    data = encode(Image.new("CMYK", (8, 8), (255, 0, 255, 0)), "TIFF")  # cyan + yellow = green
    assert pixels(decode_image(data))[4, 4].tolist() == [0, 255, 0]


@pytest.mark.parametrize("mode, value, expected", [("L", 77, 77), ("1", 1, 255)])
def test_grey_and_bilevel_become_equal_rgb(mode, value, expected):
    out = pixels(decode_image(encode(Image.new(mode, (8, 8), value), "PNG")))[4, 4]
    assert out.tolist() == [expected] * 3


def test_embedded_srgb_profile_keeps_colours_and_garbage_profile_is_ignored():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.new("RGB", (8, 8), (180, 60, 20))
    for icc in (srgb, b"not an icc profile"):
        out = pixels(decode_image(encode(img, "PNG", icc_profile=icc)))[4, 4]
        assert np.abs(out - [180, 60, 20]).max() <= 2
