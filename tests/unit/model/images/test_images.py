"""model.images.tensors: the one door for untrusted image bytes.

Each test builds its fixture in the test (Pillow, or a few hand-written bytes for what
Pillow cannot write, such as 16-bit RGB) and checks the pixels that come out.
"""

from __future__ import annotations

import io
import re
import struct
import time

import numpy as np
import pytest
import torch
from image_bytes import encode, pixels, png_chunk, refused
from PIL import Image

from model.images import decode
from model.images import tensors as images
from model.images.decode import ImageLoadError, decode_image
from model.images.tensors import load_image

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
    assert max(img.size) <= decode.WORK_MAX_SIDE * 2 and img.size[0] / img.size[1] == pytest.approx(4 / 3, 0.01)


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
