"""Untrusted image bytes in, an 8-bit RGB Pillow picture out: the decoding half of :mod:`model.images.tensors`.

:func:`decode_image` lets only :class:`ImageLoadError` escape, with one sentence a person can act on.
The recipe, for bytes nobody has checked:
1. Size caps: empty files and files over :data:`MAX_BYTES` are refused.
2. Sniff the magic bytes. Only PNG, JPEG, WebP, GIF, BMP and TIFF pass, whatever the
   file name says, and Pillow is told to try *only* the format the bytes announce, so
   it never runs its EPS, PSD, ... parsers on student uploads.
3. Read the header (``Image.open`` decodes no pixels) and refuse a pixel count over
   :data:`MAX_PIXELS` (JPEG) or :data:`MAX_DECODE_PIXELS` (others) and extreme aspect
   ratios, before any pixel is decoded: a decompression bomb is an error, not a hang.
   Then refuse a picture whose decoding would hold more than :data:`MAX_DECODE_BYTES`
   (:func:`decode_bytes`, from the header: a 38-byte lossless WebP can announce 36 MP,
   a progressive JPEG keeps all its DCT coefficients, an RGBA TIFF 4 bytes a pixel).
4. Decode: big JPEGs at reduced size with ``draft`` (DCT scaling, fast), GIF/TIFF/
   WebP/MPO only their first frame; then box-reduce to about :data:`WORK_MAX_SIDE` in the
   picture's own mode before any colour work (16-bit by strips, alpha premultiplied), so
   no full-size copy is made after the decoder's own.
5. Colour: 16-bit and float images scaled to 8 bit (not clipped), an embedded ICC
   profile converted to sRGB when Pillow's LittleCMS can, CMYK (Adobe-inverted JPEGs
   included: Pillow reads the APP14 marker) and grey converted to RGB, transparency
   (RGBA, LA, PA, P or L/RGB with a tRNS key) composited on white.
6. Orientation: the EXIF (or TIFF/XMP) orientation tag applied.

This module holds the checks (steps 1 to 3), the decoding call (4), the orientation (6) and the refusals;
the box-reduce of step 4 and the colour work of step 5 are in :mod:`model.images.pixels`.
"""

from __future__ import annotations

import io

from PIL import ExifTags, Image

from model.images.pixels import has_alpha, reduce_to_work_size, to_rgb

MAX_BYTES = 25 * 1024 * 1024  # bigger files are refused before parsing (upload cap is 20 MB)
MAX_PIXELS = 64_000_000  # header limit for JPEGs, which are decoded at reduced size (draft)
MAX_DECODE_PIXELS = 36_000_000  # header limit for formats decoded at full size (~100-150 MB of pixels)
MAX_ASPECT = 20.0  # longer/shorter side; beyond this the centre square holds almost nothing
DRAFT_MIN_SIDE = 512  # JPEGs are decoded (by 1/2, 1/4, 1/8 DCT scaling) to no less than this
WORK_MAX_SIDE = 1024  # after decoding, pictures are box-reduced to about this before colour work
MAX_DECODE_BYTES = 128 * 2**20  # what one decode may hold at full size (decode_bytes), the app needs ~1 MP
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMATS_TEXT = "PNG, JPEG, WebP, GIF, BMP or TIFF"

_ORIENTATION_TO_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Messages (one sentence each, saying what to do).
MSG_EMPTY = f"The file is empty (0 bytes); please choose a photo saved as {FORMATS_TEXT}."
MSG_DAMAGED = (
    "The image file is damaged or incomplete (perhaps the download or upload was cut short); "
    "please save or export it again and upload the new copy."
)
MSG_TOO_MANY_PIXELS = (
    "The image{size} has too many pixels to open safely; please shrink it to under {mp} megapixels and upload it again."
)


MSG_TOO_MUCH_MEMORY = (
    "The {fmt} image ({w}×{h}) would need {mb} MB of memory to open; "
    "please shrink it to under {mp} megapixels (or save it as {instead}) and upload it again."
)


class ImageLoadError(ValueError):
    """The only error :func:`load_image` raises; its message is meant for the user."""


# ---------------------------------------------------------------------------------------
# 2. Sniffing


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name announced by the magic bytes, if it is one we accept, else None."""
    head = bytes(data[:16])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _refusal_for_unknown(data: bytes, name: str | None = None) -> str:
    """A one-sentence refusal naming the kind of file when we recognise it."""
    head = bytes(data[:64])
    brand = head[8:12] if head[4:8] == b"ftyp" else b""
    if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
        return (
            "HEIC/HEIF photos are not supported; please export the photo as JPEG or PNG "
            "(on an iPhone: Settings › Camera › Formats › Most Compatible) and upload that."
        )
    if brand in (b"avif", b"avis"):
        return "AVIF images are not supported; please convert the picture to PNG or JPEG and upload that."
    kinds = [
        (b"%PDF", "a PDF document"),
        (b"%!PS", "a PostScript/EPS file"),
        (b"\xc5\xd0\xd3\xc6", "a PostScript/EPS file"),
        (b"8BPS", "a Photoshop (PSD) file"),
        (b"PK\x03\x04", "a ZIP archive (or Office document)"),
        (b"\x00\x00\x01\x00", "a Windows icon"),
        (b"II+\x00", "a BigTIFF file"),
        (b"MM\x00+", "a BigTIFF file"),
    ]
    for magic, kind in kinds:
        if head.startswith(magic):
            return f"This file is {kind}, not a photo; please upload a {FORMATS_TEXT} image instead."
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<svg", b"<?xml", b"<!doctype", b"<html")):
        return f"This file is text (SVG/HTML/XML), not a photo; please upload a {FORMATS_TEXT} image instead."
    label = f"“{name}”" if name else "This file"
    return (
        f"{label} is not a {FORMATS_TEXT} image (whatever its name says); "
        "please choose a photo saved in one of those formats."
    )


# ---------------------------------------------------------------------------------------
# 3b. What decoding will cost, from the header

_FORMAT_COPIES = {"WEBP": 2, "TIFF": 2}  # the decoder's own full-size buffer beside Pillow's (measured: WebP 6 B/px)


def _bytes_per_pixel(img: Image.Image) -> int:
    """Bytes per pixel Pillow holds at full size, plus the full-size copies
    :func:`~model.images.pixels.reduce_to_work_size` makes."""
    mode = img.mode
    stored = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4  # Pillow pads 3 bands to 4
    if mode.startswith("I;16S") or (mode.startswith("I") and "transparency" in img.info):
        return stored + 12  # converted at full size (I, float32 array, uint8): rare enough not to reduce first
    if has_alpha(img):
        return stored + (4 if mode == "RGBA" else 8)  # (-> RGBA) -> premultiplied RGBa, then reduced
    return stored + (4 if mode in ("1", "P") else 0)  # palette / bilevel -> RGB / L before reducing


def _jpeg_draft_scale(w: int, h: int, min_side: int) -> int:
    """The DCT scale ``Image.draft`` picks for ``(min_side, min_side)``: the largest of 8, 4, 2 keeping both sides."""
    for scale in (8, 4, 2):
        if -(-w // scale) >= min_side and -(-h // scale) >= min_side:
            return scale
    return 1


def decode_bytes(img: Image.Image, min_side: int = DRAFT_MIN_SIDE) -> int:
    """About how many bytes decoding the opened (not yet loaded) ``img`` holds at its peak.

    * JPEG: the draft-scaled picture (4 B/px), and for a progressive (multi-scan) JPEG also
      libjpeg's full-size DCT coefficients, 2 bytes per sample of every component
      (``img.layer``: id, horizontal and vertical sampling), which DCT scaling does not shrink;
    * others: width × height × :func:`_bytes_per_pixel`, times two where the codec keeps
      its own full-size buffer (WebP, TIFF).
    """
    w, h = img.size
    if img.format in ("JPEG", "MPO"):
        scale = _jpeg_draft_scale(w, h, min_side)
        total = -(-w // scale) * -(-h // scale) * 4
        if img.info.get("progressive") or img.info.get("progression"):
            layers = getattr(img, "layer", None) or [("", 1, 1, 0)] * 3
            hmax = max(int(lay[1]) for lay in layers) or 1
            vmax = max(int(lay[2]) for lay in layers) or 1
            total += sum(2 * -(-w * int(lay[1]) // hmax) * -(-h * int(lay[2]) // vmax) for lay in layers)
        return total
    copies = _FORMAT_COPIES.get(img.format or "", 1)
    return w * h * (_bytes_per_pixel(img) + (copies - 1) * 4)


def _check_cost(img: Image.Image, fmt: str, min_side: int) -> None:
    """Refuse, in one sentence, a picture whose decoding would hold more than :data:`MAX_DECODE_BYTES`."""
    cost = decode_bytes(img, min_side)
    if cost <= MAX_DECODE_BYTES:
        return
    w, h = img.size
    per_pixel = cost / (w * h)
    mp = max(1, int(MAX_DECODE_BYTES / per_pixel / 1_000_000))
    name = {"WEBP": "WebP"}.get(fmt, fmt)
    instead = "a baseline, not progressive, JPEG" if fmt == "JPEG" else "an ordinary JPEG"
    raise ImageLoadError(MSG_TOO_MUCH_MEMORY.format(fmt=name, w=w, h=h, mb=round(cost / 1e6), mp=mp, instead=instead))


# ---------------------------------------------------------------------------------------
# 6. Orientation


def _orientation(img: Image.Image) -> int:
    """The EXIF/TIFF/XMP orientation tag (1..8), or 1 if absent or unreadable."""
    try:
        value = int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # broken EXIF is not worth refusing a photo for
        return 1
    return value if value in _ORIENTATION_TO_TRANSPOSE else 1


# ---------------------------------------------------------------------------------------
# The one loading function


def _open_checked(data: bytes, fmt: str, name: str | None, min_side: int = DRAFT_MIN_SIDE) -> Image.Image:
    """Image.open restricted to the sniffed format, plus the header checks (no pixels decoded yet)."""
    img = Image.open(io.BytesIO(data), formats=[fmt])
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageLoadError("The image has no pixels (its header says 0 wide or 0 high); please choose another photo.")
    limit = MAX_PIXELS if img.format in ("JPEG", "MPO") else MAX_DECODE_PIXELS
    if w * h > limit:
        raise ImageLoadError(MSG_TOO_MANY_PIXELS.format(size=f" ({w}×{h})", mp=limit // 1_000_000))
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageLoadError(
            f"The image is {w}×{h} pixels, too long and thin to crop to a square; "
            f"please crop it closer to a square (at most {MAX_ASPECT:g}:1) and upload it again."
        )
    _check_cost(img, fmt, min_side)
    return img


def decode_image(data: bytes, *, name: str | None = None, min_side: int = DRAFT_MIN_SIDE) -> Image.Image:
    """Decode untrusted bytes into an upright 8-bit RGB Pillow image, or raise ImageLoadError.

    ``name`` (the uploaded file's name) is only used in messages. JPEGs are decoded at
    the smallest DCT scale that keeps both sides at least ``min_side`` px, and every
    result is box-reduced to about :data:`WORK_MAX_SIDE` px on its longer side.
    """
    if data is None or len(data) == 0:
        raise ImageLoadError(MSG_EMPTY)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageLoadError("The upload did not arrive as file bytes; please choose the photo again.")
    data = bytes(data)
    if len(data) > MAX_BYTES:
        raise ImageLoadError(
            f"The file is {len(data) / 2**20:.0f} MB, more than the {MAX_BYTES // 2**20} MB we accept; "
            "please upload a smaller or more compressed photo."
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageLoadError(_refusal_for_unknown(data, name))
    try:
        img = _open_checked(data, fmt, name, min_side)
        if img.format in ("JPEG", "MPO"):
            img.draft("RGB", (min_side, min_side))  # decode big JPEGs by 1/2, 1/4 or 1/8: fast, small
        if getattr(img, "is_animated", False) and fmt != "GIF":
            img.seek(0)  # first frame (GIF is already on frame 0 after open)
        img.load()
        orientation = _orientation(img)
        # Reduce first (cheap; the result is cropped and shrunk to <= 256 px anyway), colour work after.
        img = to_rgb(reduce_to_work_size(img, WORK_MAX_SIDE))
        if orientation != 1:
            img = img.transpose(_ORIENTATION_TO_TRANSPOSE[orientation])
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(MSG_TOO_MANY_PIXELS.format(size="", mp=MAX_DECODE_PIXELS // 1_000_000)) from exc
    except (MemoryError, RecursionError) as exc:
        raise ImageLoadError(MSG_TOO_MANY_PIXELS.format(size="", mp=MAX_DECODE_PIXELS // 1_000_000)) from exc
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, struct.error, ...)
        raise ImageLoadError(_damaged_message(fmt, exc)) from exc
    return img


def _damaged_message(fmt: str, exc: Exception) -> str:
    text = str(exc).lower()
    if "truncated" in text or "end of file" in text or "eof" in text or "not enough data" in text:
        return (
            f"The {fmt} file ends too early (the download or upload was probably cut short); "
            "please save or download it again and upload the complete file."
        )
    if "mode" in text and ("unknown" in text or "not supported" in text or "conversion" in text):
        return (
            f"This {fmt} file uses a colour format we cannot convert; please re-save it as an ordinary RGB PNG or JPEG."
        )
    return MSG_DAMAGED
