"""Image-bytes helpers shared by the decoding tests: encoders for what Pillow writes and hand-written bytes for
what it cannot (16-bit RGB PNG and TIFF), and the one-sentence checks. On pytest's pythonpath."""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from model.images.decode import ImageLoadError
from model.images.tensors import load_image


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
