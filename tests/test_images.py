"""model.images.tensors: the one door for untrusted image bytes.

Each test builds its fixture in the test (Pillow, or a few hand-written bytes for what
Pillow cannot write, such as 16-bit RGB) and checks the pixels that come out.
"""

from __future__ import annotations

import io
import re
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from model.images import decode
from model.images import tensors as images
from model.images.tensors import ImageLoadError, decode_image, load_image

# ----------------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (grey (H, W) or RGB (H, W, 3) uint16) written by hand: Pillow cannot write 16-bit RGB."""
    h, w = arr.shape[:2]
    color_type = 2 if arr.ndim == 3 else 0
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def tiff_rgb16(arr: np.ndarray) -> bytes:
    """An uncompressed little-endian 16-bit RGB TIFF (H, W, 3) uint16, written by hand."""
    h, w, _ = arr.shape
    pixels = arr.astype("<u2").tobytes()
    n_entries = 10
    ifd_at = 8
    bps_at = ifd_at + 2 + 12 * n_entries + 4
    data_at = bps_at + 6
    entries = [  # (tag, type, count, value); type 3 = SHORT, 4 = LONG
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 3, bps_at),  # BitsPerSample 16,16,16 stored at bps_at
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 2),  # photometric RGB
        (273, 4, 1, data_at),  # strip offset
        (277, 3, 1, 3),  # samples per pixel
        (278, 4, 1, h),  # rows per strip
        (279, 4, 1, len(pixels)),  # strip byte count
        (284, 3, 1, 1),  # planar config: chunky
    ]
    out = b"II*\x00" + struct.pack("<I", ifd_at) + struct.pack("<H", n_entries)
    for tag, typ, count, value in entries:
        packed = struct.pack("<HH", value, 0) if (typ == 3 and count == 1) else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, count) + packed
    out += struct.pack("<I", 0) + struct.pack("<HHH", 16, 16, 16)
    assert len(out) == data_at
    return out + pixels


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def assert_one_sentence(msg: str) -> None:
    """A user-facing message: one sentence that ends with a full stop, no traceback text."""
    assert msg.endswith("."), msg
    assert "Traceback" not in msg and "Error" not in msg, msg
    # no sentence break in the middle: ". X" with a capital after a full stop
    assert not re.search(r"[.!?] [A-Z]", msg), msg


def refused(data: bytes, **kw) -> str:
    with pytest.raises(ImageLoadError) as info:
        load_image(data, 32, **kw)
    assert_one_sentence(str(info.value))
    return str(info.value)


# ----------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_each_allowed_format_decodes_with_its_colour(fmt):
    data = encode(Image.new("RGB", (48, 40), (200, 30, 20)), fmt, **({"quality": 95} if fmt != "GIF" else {}))
    x0 = load_image(data, 32)
    assert x0.shape == (1, 3, 32, 32) and x0.dtype == torch.float32
    assert float(x0.min()) >= -1.0 and float(x0.max()) <= 1.0
    rgb = pixels(decode_image(data))[10, 10]
    assert np.abs(rgb - [200, 30, 20]).max() <= 8


def test_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    assert pixels(decode_image(buf.getvalue()))[8, 8].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "EPS"),
        (b"\xc5\xd0\xd3\xc6" + b"\x00" * 60, "EPS"),
        (b"%PDF-1.7\n1 0 obj\n", "PDF"),
        (b"8BPS\x00\x01" + b"\x00" * 40, "Photoshop"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"just some text, not a picture\n", "not a PNG, JPEG"),
    ],
)
def test_other_formats_are_refused_before_pillow_sees_them(monkeypatch, data, words):
    def no_pillow(*args, **kwargs):
        raise AssertionError("Pillow must not be handed a file that failed the magic-byte check")

    monkeypatch.setattr(images.Image, "open", no_pillow)
    assert words in refused(data, name="holiday.png")


def test_pillow_is_only_offered_the_sniffed_format(monkeypatch):
    seen = {}
    real_open = Image.open

    def spy(fp, mode="r", formats=None):
        seen["formats"] = formats
        return real_open(fp, mode, formats)

    monkeypatch.setattr(images.Image, "open", spy)
    load_image(encode(Image.new("RGB", (8, 8)), "BMP"), 32)
    assert seen["formats"] == ["BMP"]


def test_mislabelled_files_are_judged_by_their_bytes():
    # a real JPEG called .png loads ...
    jpeg = encode(Image.new("RGB", (20, 20), (0, 200, 0)), "JPEG", quality=95)
    assert load_image(jpeg, 32, name="photo.png").shape == (1, 3, 32, 32)
    # ... and a text file called .png is refused with its name in the message
    msg = refused(b"name,score\nada,10\n", name="photo.png")
    assert "photo.png" in msg and "whatever its name says" in msg


# ----------------------------------------------------------------------------------- size


def test_file_over_the_byte_cap_is_refused(monkeypatch):
    monkeypatch.setattr(decode, "MAX_BYTES", 1000)
    data = encode(Image.effect_noise((64, 64), 60).convert("RGB"), "PNG")
    assert len(data) > 1000
    assert "MB" in refused(data)


def test_decompression_bomb_is_refused_from_the_header_quickly():
    bomb = encode(Image.new("L", (9000, 9000)), "PNG")  # 81 Mpx of zeros, ~80 kB on disk
    assert len(bomb) < 200_000
    start = time.perf_counter()
    msg = refused(bomb)
    assert time.perf_counter() - start < 0.5
    assert "9000×9000" in msg and "megapixels" in msg


def test_forged_giant_header_is_refused_without_decoding():
    small = encode(Image.new("RGB", (10, 10)), "PNG")
    ihdr = struct.pack(">IIBBBBB", 200_000, 200_000, 8, 2, 0, 0, 0)  # 40 Gpx: Pillow's own bomb error
    forged = small[:8] + png_chunk(b"IHDR", ihdr) + small[8 + 25 :]
    start = time.perf_counter()
    assert "too many pixels" in refused(forged)
    assert time.perf_counter() - start < 0.5


def test_big_jpeg_is_decoded_at_reduced_size_with_draft():
    big = encode(Image.new("RGB", (6000, 4000), (20, 120, 220)), "JPEG", quality=80)
    start = time.perf_counter()
    img = decode_image(big)
    elapsed = time.perf_counter() - start
    assert img.size == (1500, 1000)  # DCT-scaled by 1/4, never decoded at 24 Mpx
    assert elapsed < 1.0
    assert np.abs(pixels(img)[500, 700] - [20, 120, 220]).max() <= 6


def test_big_png_is_reduced_before_the_crop():
    img = decode_image(encode(Image.new("RGB", (4000, 3000), (9, 99, 199)), "PNG"))
    assert max(img.size) <= images.WORK_MAX_SIDE * 2 and img.size[0] / img.size[1] == pytest.approx(4 / 3, 0.01)


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


# ----------------------------------------------------------------------------------- odd shapes


def test_one_pixel_image_gives_a_flat_picture():
    x0 = load_image(encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"), 32)
    assert x0.shape == (1, 3, 32, 32)
    assert torch.allclose(x0[0, :, 16, 16], torch.tensor([1.0, -1.0, -1.0]), atol=0.02)


def test_extreme_aspect_is_refused_with_a_message():
    msg = refused(encode(Image.new("RGB", (4000, 3), (0, 0, 0)), "PNG"))
    assert "4000×3" in msg and "square" in msg


def test_wide_but_reasonable_panorama_is_centre_cropped():
    img = Image.new("RGB", (400, 40), (0, 0, 255))
    img.paste((255, 0, 0), (180, 0, 220, 40))  # a red square in the middle
    x0 = load_image(encode(img, "PNG"), 32)
    assert float(x0[0, 0].mean()) > 0.9 and float(x0[0, 2].mean()) < -0.9  # only the red centre is kept


# ----------------------------------------------------------------------------------- broken files


def test_zero_bytes():
    assert "empty" in refused(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP"])
def test_truncated_files_get_a_clear_message(fmt):
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), fmt)
    msg = refused(data[: len(data) // 2])
    assert "again" in msg


def test_corrupt_png_crc_is_refused():
    data = bytearray(encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG"))
    data[29] ^= 0xFF  # last byte of the IHDR CRC
    assert "damaged" in refused(bytes(data))


def test_bad_resolution_is_an_image_load_error_too():
    with pytest.raises(ImageLoadError):
        load_image(encode(Image.new("RGB", (8, 8)), "PNG"), 33)
    with pytest.raises(ImageLoadError):
        load_image(encode(Image.new("RGB", (8, 8)), "PNG"), "big")  # type: ignore[arg-type]


def test_model_images_does_not_import_streamlit():
    import inspect

    assert not re.search(r"^\s*(import|from)\s+streamlit", inspect.getsource(images), re.M)
