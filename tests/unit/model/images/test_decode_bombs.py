"""Decoding bombs (issue 28, item 2): files of a few bytes that announce huge pictures are refused from their
header, or decoded at a size the app needs, before they can cost hundreds of MB.

The peak memory is measured for real: each file is decoded in a fresh Python process and its peak resident
set (``VmHWM``) after reading the bytes is compared with the peak after ``decode_image``. Before the fix
each of these files added 370 to 620 MiB.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from image_bytes import assert_one_sentence, encode, png16
from PIL import Image

from harness import bombs
from model.images import decode
from model.images.decode import ImageLoadError, decode_image

ROOT = Path(__file__).resolve().parents[4]
PEAK_LIMIT_MIB = 160  # per decode; the budget is decode.MAX_DECODE_BYTES (128 MiB) and what it misses

_MEASURE = textwrap.dedent(
    """
    import sys
    from model.images.decode import ImageLoadError, decode_image
    def peak_kib():  # VmHWM: this process's peak resident set (ru_maxrss would carry pytest's over exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    data = open(sys.argv[1], "rb").read()
    before = peak_kib()
    try:
        img = decode_image(data)
        outcome = "decoded %dx%d" % img.size
    except ImageLoadError as exc:
        outcome = "refused " + str(exc)
    after = peak_kib()
    print((after - before) / 1024.0)
    print(outcome)
    """
)


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    out = {}
    for name, data in bombs.all_bombs().items():
        out[name] = folder / name
        out[name].write_bytes(data)
    return out


def _decode_in_fresh_process(path: Path) -> tuple[float, str]:
    """(MiB the decode added to the process's peak RSS, "decoded WxH" or "refused <message>")."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    peak, outcome = proc.stdout.strip().split("\n", 1)
    return float(peak), outcome


@pytest.mark.parametrize("name", list(bombs.ALL))
def test_a_bomb_costs_little_memory_and_gives_a_picture_or_one_sentence(bomb_files, name):
    assert bomb_files[name].stat().st_size < 1_000_000  # a small upload ...
    peak_mib, outcome = _decode_in_fresh_process(bomb_files[name])
    assert peak_mib < PEAK_LIMIT_MIB, (name, peak_mib, outcome)  # ... must not cost hundreds of MB
    if outcome.startswith("refused "):
        message = outcome.removeprefix("refused ")
        assert_one_sentence(message)
        assert "megapixels" in message and "×" in message, message  # says how big it is and what to do
    else:
        w, h = (int(v) for v in outcome.removeprefix("decoded ").split("x"))
        assert max(w, h) <= 2 * decode.WORK_MAX_SIDE


def test_the_cost_is_read_from_the_header_before_any_pixel():
    """The worst files are refused by their announced cost: no decoder runs (Image.load is never called)."""
    files = [bombs.webp(), bombs.tiff_rgba()]
    loads = []
    original = Image.Image.load

    def counting_load(self):
        loads.append(self.size)
        return original(self)

    Image.Image.load = counting_load
    try:
        for data in files:
            with pytest.raises(ImageLoadError):
                decode_image(data)
    finally:
        Image.Image.load = original
    assert loads == []


def test_progressive_jpeg_cost_counts_its_coefficients_baseline_does_not():
    side = 4096
    prog = Image.open(io.BytesIO(encode(Image.new("RGB", (side, side)), "JPEG", progressive=True, subsampling=0)))
    base = Image.open(io.BytesIO(encode(Image.new("RGB", (side, side)), "JPEG", subsampling=0)))
    draft = (side // 8) ** 2 * 4
    assert decode.decode_bytes(base) == draft  # decoded by 1/8: 512 px a side
    assert decode.decode_bytes(prog) == draft + 3 * side * side * 2  # plus 3 components of int16 coefficients
    sub = Image.open(io.BytesIO(encode(Image.new("RGB", (side, side)), "JPEG", progressive=True, subsampling=2)))
    assert decode.decode_bytes(sub) == draft + side * side * 2 * 3 // 2  # 4:2:0: chroma at a quarter


def test_an_ordinary_big_photo_still_opens():
    """A 12 MP phone photo saved as PNG or (baseline) JPEG is under the budget and decodes to about 1000 px."""
    img = Image.new("RGB", (4000, 3000), (10, 200, 30))
    for fmt in ("PNG", "JPEG"):
        out = decode_image(encode(img, fmt))
        assert out.mode == "RGB" and 900 <= max(out.size) <= 2 * decode.WORK_MAX_SIDE


def test_big_transparent_pictures_are_reduced_without_colour_leaking():
    """Reduced before compositing, alpha is premultiplied: a transparent red pixel beside an opaque blue one
    averages to half blue, half white (not purple)."""
    side = 2048  # reduced by 2
    arr = np.zeros((side, side, 4), np.uint8)
    arr[..., 0] = 255  # transparent red everywhere ...
    arr[:, 1::2] = (0, 0, 255, 255)  # ... with every other column opaque blue
    out = np.asarray(decode_image(encode(Image.fromarray(arr, "RGBA"), "PNG", compress_level=1)), dtype=int)
    assert out.shape[:2] == (1024, 1024)
    r, g, b = out[100:900, 100:900].reshape(-1, 3).mean(axis=0)
    assert abs(r - 127.5) < 2 and abs(g - 127.5) < 2 and b > 250, (r, g, b)


def test_big_16_bit_grey_is_reduced_as_16_bit_and_scaled_not_clipped():
    side = 2048
    arr = np.full((side, side), 0x8080, np.uint16)  # 32896 / 257 = 128
    arr[:, ::2] = 0xFFFF
    out = np.asarray(decode_image(png16(arr)), dtype=int)
    assert out.shape == (1024, 1024, 3)
    assert np.all(np.abs(out - round((0xFFFF + 0x8080) / 2 / 257)) <= 1)
