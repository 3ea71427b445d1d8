"""Untrusted image bytes in, tensors out, and tensors back to pictures.

Every image the app shows enters through :func:`load_image`, which decodes the bytes with
:func:`model.images.decode.decode_image` (allow-listed formats, size caps before any pixel is decoded,
colour, transparency and orientation handled; see that module) and lets only
:class:`ImageLoadError` escape, with one sentence a person can act on. The decoding names are
re-exported here, so ``from model.images import decode_image, ImageLoadError`` keeps working.

Tensor conventions: ``(1, 3, H, W)`` float32 with values in [-1, 1] (0 = mid grey); a grey model's
images are ``(1, 1, H, W)`` (:func:`to_channels`), and pictures of them are grey RGB.
Noise display: a noise tensor (eps, eps_hat, eps_hat - eps) is shown with ONE fixed
normalisation everywhere: value ``v`` maps to grey level ``0.5 + v / 6`` (so -3 is
black, 0 is mid grey, +3 is white), clipped. This is :data:`NOISE_RANGE` = 3 sigma.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from model.images.decode import (
    DRAFT_MIN_SIDE,
    ImageLoadError,
    decode_image,
)

DEFAULT_RESOLUTION = 64
MIN_RESOLUTION = 32
MAX_RESOLUTION = 256
NOISE_RANGE = 3.0  # noise panels map [-3, 3] -> [black, white]


def check_resolution(resolution: int) -> int:
    """Working resolutions are multiples of 16 from 32 to 256 px."""
    try:
        r = int(resolution)
    except (TypeError, ValueError) as exc:
        raise ImageLoadError(f"Working resolution must be a whole number of pixels, got {resolution!r}.") from exc
    if r < MIN_RESOLUTION or r > MAX_RESOLUTION or r % 16:
        raise ImageLoadError(
            f"Working resolution must be a multiple of 16 between {MIN_RESOLUTION} and {MAX_RESOLUTION} px, got {r}."
        )
    return r


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB Pillow image -> (1, 3, H, W) float32 in [-1, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def center_crop_resize(img: Image.Image, resolution: int) -> Image.Image:
    """Square centre crop, then resize to ``resolution`` with a good (Lanczos) filter."""
    return ImageOps.fit(img, (resolution, resolution), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def load_image(data: bytes, resolution: int = DEFAULT_RESOLUTION, *, name: str | None = None) -> torch.Tensor:
    """Untrusted bytes -> x_0, a (1, 3, R, R) float32 tensor in [-1, 1] at the working resolution R.

    The photo is decoded (see the module docstring: allow-listed formats, size caps,
    EXIF orientation applied, transparency on white, 16-bit scaled), centre-cropped to
    a square and resized to R with Lanczos. Raises :class:`ImageLoadError` only.
    """
    resolution = check_resolution(resolution)
    return picture_to_x0(decode_image(data, name=name, min_side=max(2 * resolution, DRAFT_MIN_SIDE)), resolution)


def picture_to_x0(img: Image.Image, resolution: int) -> torch.Tensor:
    """A decoded 8-bit RGB picture (:func:`decode_image`) -> x_0, (1, 3, R, R) float32 in [-1, 1], centre-cropped.

    The app decodes an upload once (``app.server.uploads``) and calls this for each working resolution R.
    """
    resolution = check_resolution(resolution)
    try:
        return pil_to_tensor(center_crop_resize(img, resolution))
    except Exception as exc:
        raise ImageLoadError("This image could not be resized; please choose another photo.") from exc


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's convert("L")


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, channels, H, W): RGB to grey by BT.601 luma (as Pillow's ``"L"``), grey to RGB
    by repeating the channel; unchanged when C already equals ``channels``."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) in [-1, 1], C = 3 or 1 -> (H, W, 3) uint8, clipped (grey shown as grey RGB)."""
    x = x.detach().float().cpu()
    if x.ndim == 4:
        x = x[0]
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
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
