"""Small files that announce huge pictures (issue 28): the worst uploads a student can make, built in memory.

Each is a few bytes to a few hundred kB and decodes, at full size, to hundreds of MB:

* ``webp``: a lossless 5999×5999 WebP of one colour (38 bytes);
* ``png16``: a 16-bit grey 5999×5999 PNG (about 80 kB, written by hand, streaming);
* ``tiff_rgba``: a deflated RGBA 5999×5999 TIFF (about 250 kB);
* ``jpeg_progressive``: a progressive 8000×8000 (64 MP) 4:4:4 JPEG (about 750 kB).

Used by tests/unit/model/images/test_decode_bombs.py and bench/bomb.py.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

SIDE = 5999  # just under the 36 MP header limit of b5ab46d's decoder
JPEG_SIDE = 8000  # 64 MP, its JPEG header limit


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _colour(variant: int) -> tuple[int, int, int]:
    """A different colour per variant, so each variant's bytes (and cache key) differ."""
    return (90 + variant % 100, 120, 200 - variant % 100)


def webp(side: int = SIDE, variant: int = 0) -> bytes:
    img = Image.new("RGB", (side, side), _colour(variant))
    return _encode(img, "WEBP", lossless=True, method=0, quality=0)


def png16(side: int = SIDE, variant: int = 0) -> bytes:
    comp = zlib.compressobj(9)
    row = b"\x00" + struct.pack(">H", 0x1234 + variant) * side  # filter byte, then 16-bit grey samples
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def tiff_rgba(side: int = SIDE, variant: int = 0) -> bytes:
    return _encode(Image.new("RGBA", (side, side), (*_colour(variant), 128)), "TIFF", compression="tiff_deflate")


def jpeg_progressive(side: int = JPEG_SIDE, variant: int = 0) -> bytes:
    img = Image.new("RGB", (side, side), _colour(variant))
    return _encode(img, "JPEG", progressive=True, quality=50, subsampling=0)


ALL = {"webp": webp, "png16": png16, "tiff_rgba": tiff_rgba, "jpeg_progressive": jpeg_progressive}
MIME = {"webp": "image/webp", "png16": "image/png", "tiff_rgba": "image/tiff", "jpeg_progressive": "image/jpeg"}
SUFFIX = {"webp": "webp", "png16": "png", "tiff_rgba": "tif", "jpeg_progressive": "jpg"}


def all_bombs() -> dict[str, bytes]:
    """name -> bytes of every bomb (takes a few seconds and about 0.5 GB while encoding)."""
    return {name: make() for name, make in ALL.items()}
