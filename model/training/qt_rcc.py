"""Read Qt resource archives (``.rcc``, as made by ``rcc -binary``) with no Qt installed.

GCompris (Debian's ``gcompris-qt-data``) ships each activity's pictures packed in one ``.rcc``
file; ``model.training.data`` unpacks a few of its photographs this way. Format (Qt's ``rcc.cpp``):

* header: ``b"qres"``, then big-endian uint32 version (1–3), tree, data and names offsets
  (and, from version 3, a flags word);
* tree: nodes of 14 bytes (version 1) or 22 bytes (version ≥ 2, with an 8-byte mtime):
  uint32 name offset, uint16 flags (1 = zlib, 2 = directory, 4 = zstd), then either
  uint32 child count + uint32 first child index (directories) or uint16 country +
  uint16 language + uint32 data offset (files);
* names: uint16 length, uint32 hash, UTF-16-BE characters;
* data: uint32 size, then the bytes; zlib entries are ``qCompress`` blobs (a uint32 of the
  uncompressed size, then a zlib stream).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

_COMPRESSED, _DIRECTORY, _ZSTD = 1, 2, 4


class RccError(ValueError):
    """Not a Qt resource archive, or one this reader cannot unpack."""


def iter_rcc(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, bytes)`` for every file in an rcc archive, paths joined with ``/``."""
    if blob[:4] != b"qres" or len(blob) < 20:
        raise RccError("not a Qt resource archive (no 'qres' magic)")
    version, tree, data, names = struct.unpack_from(">4I", blob, 4)
    if version not in (1, 2, 3):
        raise RccError(f"unsupported rcc version {version}")
    node_size = 14 if version == 1 else 22

    def name(node: int) -> str:
        (off,) = struct.unpack_from(">I", blob, tree + node * node_size)
        (length,) = struct.unpack_from(">H", blob, names + off)
        start = names + off + 6
        return blob[start : start + 2 * length].decode("utf-16-be")

    def walk(node: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        base = tree + node * node_size
        (flags,) = struct.unpack_from(">H", blob, base + 4)
        if flags & _DIRECTORY:
            count, first = struct.unpack_from(">II", blob, base + 6)
            for child in range(first, first + count):
                yield from walk(child, f"{prefix}{name(child)}/")
            return
        (offset,) = struct.unpack_from(">I", blob, base + 10)
        (size,) = struct.unpack_from(">I", blob, data + offset)
        payload = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & _ZSTD:
            raise RccError(f"{prefix.rstrip('/')}: zstd-compressed entries are not supported")
        if flags & _COMPRESSED:
            payload = zlib.decompress(payload[4:])
        yield prefix.rstrip("/"), payload

    yield from walk(0, "")  # node 0 is the unnamed root directory
