"""Tensor -> picture helpers for the pages (no Streamlit here, so they are testable).

Image tensors are (1, 3, H, W) in [-1, 1]. Noise tensors use the one normalisation
stated in :mod:`model.images.tensors`: grey = 0, black = -3, white = +3.
"""

from __future__ import annotations

import io

import torch
from PIL import Image

from model.images.tensors import NOISE_RANGE, noise_to_uint8, tensor_to_uint8, to_picture

DISPLAY_PX = 256  # small images are upscaled to about this size with nearest-neighbour
NOISE_CAPTION = f"grey = 0, black = −{NOISE_RANGE:g}, white = +{NOISE_RANGE:g}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 step"``, ``"2 steps"``; ``many`` for an irregular plural."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def picture(x: torch.Tensor, size: int = DISPLAY_PX) -> Image.Image:
    """An image tensor in [-1, 1] as an upscaled (no smoothing) Pillow picture."""
    return to_picture(tensor_to_uint8(x), size)


def noise_picture(eps: torch.Tensor, size: int = DISPLAY_PX) -> Image.Image:
    """A noise tensor shown with the fixed ±3 sigma normalisation."""
    return to_picture(noise_to_uint8(eps), size)


def jpeg_bytes(img: Image.Image) -> bytes:
    """The bytes ``st.image`` sends for an RGB Pillow picture (its "auto" format: JPEG at quality 100), made here
    so that a picture that does not change between reruns can be encoded once and cached (app/ui/pictures.py)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=100)
    return buf.getvalue()
