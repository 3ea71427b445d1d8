"""Fuzz model.images.tensors.load_image: whatever the bytes, only ImageLoadError escapes.

At least :data:`N_EXAMPLES` inputs: random bytes (with and without a valid magic
number) and mutations of small valid PNG, JPEG, GIF, BMP, TIFF and WebP files (bit
flips, byte overwrites, truncations, insertions, deletions, splices of two files,
header swaps between formats, chunk-length and size-field edits). Reproducible:
hypothesis runs derandomized (a fixed seed) with no example database, and every
mutation is driven by a seeded ``random.Random``. The number of inputs actually tried
is printed and recorded as the JUnit property ``fuzz_examples``.
"""

from __future__ import annotations

import io
import random
import struct
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from model.images.decode import ImageLoadError
from model.images.tensors import load_image

# Pillow warns about the odd tags and sizes of broken files; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

N_EXAMPLES = 10_000
RESOLUTION = 32  # the smallest working resolution keeps each example to a few milliseconds


def _seeds() -> list[bytes]:
    """Small valid files covering the formats, modes and metadata the loader handles."""
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), "RGB")
    rgba = Image.fromarray(rng.integers(0, 256, (9, 11, 4), dtype=np.uint8), "RGBA")
    grey16 = Image.fromarray(rng.integers(0, 65536, (8, 8), dtype=np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 6

    def enc(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        return buf.getvalue()

    gif = io.BytesIO()
    rgb.convert("P").save(gif, format="GIF", save_all=True, append_images=[rgba.convert("P")], transparency=0)
    return [
        enc(rgb, "PNG"),
        enc(rgba, "PNG", exif=exif.tobytes()),
        enc(grey16, "PNG"),
        enc(rgb.convert("P"), "PNG", transparency=3),
        enc(rgb, "JPEG", quality=80, exif=exif.tobytes()),
        enc(rgb, "JPEG", quality=60, progressive=True),
        enc(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), "JPEG"),
        gif.getvalue(),
        enc(rgb, "BMP"),
        enc(rgb.convert("P"), "BMP"),
        enc(rgb, "TIFF"),
        enc(rgba, "TIFF", compression="tiff_deflate"),
        enc(grey16, "TIFF"),
        enc(rgb, "WEBP", quality=70),
        enc(rgba, "WEBP", lossless=True),
    ]


SEEDS = _seeds()
HEADERS = [s[:16] for s in SEEDS]
STATS = {"examples": 0, "decoded": 0, "refused": 0}


def mutate(data: bytes, kind: str, rnd: random.Random) -> bytes:
    b = bytearray(data)
    n = len(b)
    if kind == "bitflip":
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(n)
            b[i] ^= 1 << rnd.randrange(8)
    elif kind == "overwrite":
        for _ in range(rnd.randint(1, 6)):
            b[rnd.randrange(n)] = rnd.choice([0, 1, 0x7F, 0x80, 0xFF, rnd.randrange(256)])
    elif kind == "truncate":
        b = b[: rnd.randrange(n)]
    elif kind == "insert":
        i = rnd.randrange(n + 1)
        b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
    elif kind == "delete":
        i = rnd.randrange(n)
        del b[i : i + rnd.randint(1, 64)]
    elif kind == "splice":
        other = rnd.choice(SEEDS)
        b = b[: rnd.randrange(n)] + other[rnd.randrange(len(other)) :]
    elif kind == "header_swap":
        head = rnd.choice(HEADERS)
        b = bytearray(head) + b[len(head) :]
    elif kind == "big_numbers":  # size / length fields: write an extreme 16- or 32-bit value somewhere
        i = rnd.randrange(max(n - 4, 1))
        value = rnd.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rnd.randrange(1 << 32)])
        b[i : i + 4] = struct.pack(rnd.choice([">I", "<I"]), value)
    elif kind == "repeat":  # repeat a slice (e.g. duplicate a chunk)
        i = rnd.randrange(n)
        j = min(n, i + rnd.randint(1, 200))
        b[j:j] = b[i:j] * rnd.randint(1, 4)
    return bytes(b)


KINDS = ["bitflip", "overwrite", "truncate", "insert", "delete", "splice", "header_swap", "big_numbers", "repeat"]

mutated_inputs = st.builds(
    lambda seed, kinds, salt: _apply(SEEDS[seed], kinds, salt),
    st.integers(0, len(SEEDS) - 1),
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=3),
    st.integers(0, 2**32 - 1),
)
random_inputs = st.binary(max_size=300)
magic_then_random = st.builds(lambda head, tail: head + tail, st.sampled_from(HEADERS), st.binary(max_size=300))
any_input = st.one_of(mutated_inputs, mutated_inputs, mutated_inputs, random_inputs, magic_then_random)


def _apply(data: bytes, kinds: list[str], salt: int) -> bytes:
    rnd = random.Random(salt)
    for kind in kinds:
        if not data:
            break
        data = mutate(data, kind, rnd)
    return data


@settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=True,  # fixed seed: CI runs the same inputs every time
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(any_input)
def _only_image_load_error_escapes(data: bytes) -> None:
    STATS["examples"] += 1
    try:
        x0 = load_image(data, RESOLUTION)
    except ImageLoadError as exc:
        STATS["refused"] += 1
        msg = str(exc)
        assert msg and msg.endswith(".") and "Traceback" not in msg
        return
    STATS["decoded"] += 1
    assert x0.shape == (1, 3, RESOLUTION, RESOLUTION) and x0.dtype == torch.float32
    assert torch.isfinite(x0).all() and float(x0.abs().max()) <= 1.0


def test_seeds_are_valid_images():
    for data in SEEDS:
        assert load_image(data, RESOLUTION).shape == (1, 3, RESOLUTION, RESOLUTION)


@pytest.mark.slow
def test_fuzz_only_image_load_error_escapes(record_property):
    start = time.perf_counter()
    _only_image_load_error_escapes()
    elapsed = time.perf_counter() - start
    record_property("fuzz_examples", STATS["examples"])
    print(
        f"\nfuzz: {STATS['examples']} inputs in {elapsed:.1f} s "
        f"({STATS['decoded']} decoded, {STATS['refused']} refused with ImageLoadError)"
    )
    assert STATS["examples"] >= N_EXAMPLES
