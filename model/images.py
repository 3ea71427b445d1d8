"""Untrusted image bytes in, tensors out, and tensors back to pictures.

Every image the app shows enters through :func:`load_image`, which lets only
:class:`ImageLoadError` escape, with a sentence a person can act on.

Tensor conventions: ``(1, 3, H, W)`` float32 with values in [-1, 1] (0 = mid grey).
Noise display: a noise tensor (eps, eps_hat, eps_hat - eps) is shown with ONE fixed
normalisation everywhere: value ``v`` maps to grey level ``0.5 + v / 6`` (so -3 is
black, 0 is mid grey, +3 is white), clipped. This is :data:`NOISE_RANGE` = 3 sigma.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps

DEFAULT_RESOLUTION = 64
MIN_RESOLUTION = 32
MAX_RESOLUTION = 256
NOISE_RANGE = 3.0  # noise panels map [-3, 3] -> [black, white]
MAX_PIXELS = 40_000_000  # larger images are refused (decompression-bomb guard)
MAX_BYTES = 50 * 1024 * 1024
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


class ImageLoadError(ValueError):
    """The only error :func:`load_image` raises; its message is meant for the user."""


def check_resolution(resolution: int) -> int:
    """Working resolutions are multiples of 16 from 32 to 256 px."""
    r = int(resolution)
    if r < MIN_RESOLUTION or r > MAX_RESOLUTION or r % 16:
        raise ImageLoadError(
            f"Working resolution must be a multiple of 16 between {MIN_RESOLUTION} and {MAX_RESOLUTION} px, got {r}."
        )
    return r


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: transparency composited on white, 16-bit scaled."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.nan_to_num(arr).astype(np.uint8), mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode == "CMYK" or img.mode != "RGB":
        img = img.convert("RGB")
    return img


def center_crop_resize(img: Image.Image, resolution: int) -> Image.Image:
    """Square centre crop, then resize to ``resolution`` with a good (Lanczos) filter."""
    return ImageOps.fit(img, (resolution, resolution), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def decode_image(data: bytes) -> Image.Image:
    """Decode untrusted bytes into an upright 8-bit RGB Pillow image, or raise ImageLoadError."""
    if not data:
        raise ImageLoadError("The file is empty. Please choose a photo (PNG, JPEG, WebP, GIF, BMP or TIFF).")
    if len(data) > MAX_BYTES:
        raise ImageLoadError(f"The file is larger than {MAX_BYTES // 2**20} MB. Please choose a smaller photo.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
            if img.width * img.height > MAX_PIXELS:
                raise ImageLoadError(
                    f"The image is {img.width}×{img.height} pixels, more than we accept "
                    f"({MAX_PIXELS // 1_000_000} megapixels). Please choose a smaller photo."
                )
            if img.format == "JPEG":
                img.draft("RGB", (1024, 1024))  # decode big JPEGs at reduced size: fast
            img.seek(0)  # GIF/TIFF: first frame
            img.load()
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError("The image has too many pixels to open safely. Please choose a smaller photo.") from exc
    except Image.DecompressionBombWarning as exc:
        raise ImageLoadError("The image has too many pixels to open safely. Please choose a smaller photo.") from exc
    except Exception as exc:  # Pillow raises many types for bad files; users get one sentence.
        raise ImageLoadError(
            "This file could not be read as an image (it may be damaged, or not a PNG, JPEG, WebP, GIF, BMP "
            "or TIFF). Please choose another photo."
        ) from exc
    if min(img.size) < 1:
        raise ImageLoadError("The image has no pixels. Please choose another photo.")
    return img


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB Pillow image -> (1, 3, H, W) float32 in [-1, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_image(data: bytes, resolution: int = DEFAULT_RESOLUTION) -> torch.Tensor:
    """Untrusted bytes -> x_0, a (1, 3, R, R) float32 tensor in [-1, 1] at the working resolution R.

    The photo is decoded (EXIF orientation applied, transparency on white), centre-
    cropped to a square and resized to R. Raises :class:`ImageLoadError` only.
    """
    resolution = check_resolution(resolution)
    img = decode_image(data)
    try:
        return pil_to_tensor(center_crop_resize(img, resolution))
    except Exception as exc:
        raise ImageLoadError("This image could not be resized. Please choose another photo.") from exc


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) in [-1, 1] -> (H, W, 3) uint8, clipped."""
    x = x.detach().float().cpu()
    if x.ndim == 4:
        x = x[0]
    arr = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return arr.permute(1, 2, 0).numpy()


def noise_to_uint8(eps: torch.Tensor, scale: float = NOISE_RANGE) -> np.ndarray:
    """Noise display normalisation used in every panel: v -> 0.5 + v / (2 * scale), clipped."""
    return tensor_to_uint8(eps / scale)


def to_picture(arr: np.ndarray, size: int = 256) -> Image.Image:
    """uint8 (H, W, 3) -> Pillow image upscaled to ``size`` px with nearest-neighbour (no smoothing)."""
    img = Image.fromarray(arr)
    if img.width < size:
        factor = max(1, size // img.width)
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    return img
