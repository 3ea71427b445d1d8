"""Decoded pixels to working 8-bit RGB: steps 4b and 5 of :func:`model.images.decode.decode_image`'s recipe.

* :func:`reduce_to_work_size` box-reduces a just-loaded picture in its own mode (16-bit by strips, so no
  full-size 32-bit copy; transparency premultiplied; palettes as RGB) before any colour work;
* :func:`to_rgb` turns any Pillow mode into 8-bit RGB: 16-bit and float images scaled to 8 bit (not clipped,
  :func:`high_depth_to_8bit`), an embedded ICC profile converted to sRGB when Pillow's LittleCMS can, CMYK and
  grey converted, transparency (RGBA, LA, PA, P or L/RGB with a tRNS key) composited on white;
* :func:`has_alpha` says whether a picture carries transparency (the decoder's cost estimate uses it too).

Pure Pillow and numpy; the size caps and the refusals stay in :mod:`model.images.decode`.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


# ---------------------------------------------------------------------------------------
# 4b. Reduce before colour work


def _reduce_16bit(img: Image.Image, factor: int) -> Image.Image:
    """I;16 / I;16L / I;16B / I;16N box-reduced by ``factor`` in strips (no full-size 32-bit copy) -> I;16."""
    w, h = img.size
    ow, oh = w // factor, h // factor
    band = max(1, 2**20 // max(1, w * factor)) * factor  # rows per strip: about 1 M samples
    rows = []
    for y in range(0, oh * factor, band):
        strip = np.asarray(img.crop((0, y, ow * factor, min(y + band, oh * factor))), dtype=np.float32)
        rows.append(strip.reshape(-1, factor, ow, factor).mean(axis=(1, 3)))
    small = np.rint(np.concatenate(rows)).astype(np.uint16)
    out = Image.fromarray(small)
    out.info.update({k: v for k, v in img.info.items() if k != "transparency"})
    return out


def reduce_to_work_size(img: Image.Image, max_side: int) -> Image.Image:
    """Box-reduce a just-loaded picture to about ``max_side`` on its longer side (by an integer factor), in a mode that
    averages correctly: 16-bit as 16-bit, transparency premultiplied (so the colour of transparent
    pixels cannot leak into their neighbours), palettes as RGB."""
    factor = max(img.size) // max_side
    if factor < 2:
        return img
    mode = img.mode
    if mode.startswith("I;16S") or (mode.startswith("I") and "transparency" in img.info):
        img = high_depth_to_8bit(img)  # rare: signed 16 bit, or a 16-bit colour key
    elif mode.startswith("I;16"):
        return _reduce_16bit(img, factor)
    if has_alpha(img):
        info = {k: v for k, v in img.info.items() if k != "transparency"}
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")  # P/L/RGB + tRNS -> real alpha
        out = rgba.convert("RGBa").reduce(factor).convert("RGBA")
        out.info.update(info)
        return out
    if mode in ("1", "P"):
        img = img.convert("L" if mode == "1" else "RGB")
    return img.reduce(factor)


# ---------------------------------------------------------------------------------------
# 5. Colour


def _alpha_from_key(arr: np.ndarray, key) -> np.ndarray | None:
    """A uint8 alpha mask from a tRNS colour key (grey int or RGB tuple), or None."""
    try:
        if arr.ndim == 2:
            return np.where(arr == int(key), 0, 255).astype(np.uint8)
        key = np.asarray(key, dtype=arr.dtype).reshape(1, 1, -1)
        return np.where(np.all(arr == key, axis=-1), 0, 255).astype(np.uint8)
    except (TypeError, ValueError):
        return None


def high_depth_to_8bit(img: Image.Image) -> Image.Image:
    """I;16*, I and F (one channel, 16/32 bit) -> L (or LA if a tRNS key is set), scaled not clipped.

    * unsigned 16 bit (I;16, I;16B, I;16L, I;16N): v / 257, so 0 -> 0 and 65535 -> 255;
    * I (32-bit int): by its nominal range: 8-bit data kept, 0..65535 divided by 257,
      signed 16-bit data shifted by 32768 first, anything else min-max stretched;
    * F (float): [0, 1] data times 255, anything else min-max stretched; NaN -> 0.
    """
    mode = img.mode
    key = img.info.get("transparency")
    if mode.startswith("I;16"):
        src = np.asarray(img.convert("I"), dtype=np.float32)  # float32 holds 16-bit integers exactly
        arr = (src + 32768.0) / 257.0 if mode.startswith("I;16S") else src / 257.0
    elif mode == "I":
        src = np.asarray(img, dtype=np.float32)
        lo, hi = (float(src.min()), float(src.max())) if src.size else (0.0, 0.0)
        if lo >= 0 and hi <= 255:
            arr = src
        elif lo >= 0 and hi <= 65535:
            arr = src / 257.0
        elif lo >= -32768 and hi <= 32767:
            arr = (src + 32768.0) / 257.0
        else:
            arr = (src - lo) * (255.0 / max(hi - lo, 1.0))
    else:  # "F"
        src = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(src.min()), float(src.max())) if src.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            arr = src * 255.0
        else:
            arr = (src - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(src)
    grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if key is not None and mode != "F":
        alpha = _alpha_from_key(src, key)
        if alpha is not None:
            grey = Image.merge("LA", (grey, Image.fromarray(alpha, mode="L")))
    return grey


def _to_srgb(img: Image.Image) -> Image.Image:
    """Apply an embedded ICC profile (RGB/CMYK/RGBA) towards sRGB; on any trouble keep the pixels as they are."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return img
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(src) or "").lower()
        if img.mode != "CMYK" and "srgb" in description:
            return img  # already sRGB: nothing to do (and faster)
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode=out_mode)
        return converted if converted is not None else img
    except Exception:  # a broken or unsupported profile: fall back to Pillow's plain conversion
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit scaled, ICC applied, transparency composited on white."""
    if img.mode.startswith("I") or img.mode == "F":
        img = high_depth_to_8bit(img)
    img = _to_srgb(img)
    if has_alpha(img):
        img = img.convert("RGBA")  # P/L/RGB + tRNS -> real alpha; RGBa/La un-premultiplied
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        # out = alpha * colour + (1 - alpha) * white: the colour of fully transparent pixels never shows.
        img = Image.alpha_composite(white, img)
    if img.mode != "RGB":
        img = img.convert("RGB")  # CMYK (already un-inverted for Adobe JPEGs), L, 1, P, YCbCr, ...
    return img
