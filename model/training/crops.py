"""Training photos as tensors, and the crops that make the training samples.

:func:`load_images` reads a folder of photos (``python -m model.cli.data --out`` builds one) as uint8 tensors
(3, H, W). The crop sampler (:func:`random_crop`, :class:`CropSampler`) makes the training samples: square
crops at random scales from small patches up to the whole short side of the picture, resized to the
training resolution, randomly flipped (and, with ``dihedral``, rotated by a random multiple of 90°),
scaled to [-1, 1]. :func:`center_square` is the deterministic crop of evaluation.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@contextmanager
def no_pixel_limit():
    """Lift PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, meant for untrusted uploads) while our
    own source files are read: some wallpapers and photos of a training folder are larger. The old value comes
    back on exit, so importing this module changes nothing for the rest of the process. Also a decorator."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@no_pixel_limit()
def load_images(folder: Path) -> list[torch.Tensor]:
    """All images of ``folder`` as uint8 tensors (3, H, W)."""
    ims = []
    for p in list_images(folder):
        a = np.asarray(Image.open(p).convert("RGB"))
        ims.append(torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous())
    if not ims:
        raise FileNotFoundError(f"no images in {folder}")
    return ims


def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float() / 127.5 - 1.0


def center_square(img: torch.Tensor, res: int) -> torch.Tensor:
    """Center-crop the whole photo to a square and resize it to ``res`` (float in [-1, 1], shape (3, res, res))."""
    _, h, w = img.shape
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    c = to_model_range(img[:, y : y + s, x : x + s])[None]
    c = F.interpolate(c, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
    return c[0].clamp(-1, 1)


def random_crop(
    img: torch.Tensor,
    res: int,
    g: torch.Generator,
    min_side: int | None = None,
    p_whole: float = 0.25,
    dihedral: bool = False,
) -> torch.Tensor:
    """A random square crop, side log-uniform in [min_side, short side] (with probability ``p_whole``
    the whole short side), resized to ``res``, randomly flipped (``dihedral``: then rotated by a
    random multiple of 90°, so all 8 symmetries of the square); float in [-1, 1], shape (3, res, res)."""
    _, h, w = img.shape
    short = min(h, w)
    lo = min(min_side or res, short)
    if torch.rand((), generator=g).item() < p_whole or lo >= short:
        side = short
    else:
        u = torch.rand((), generator=g).item()
        side = int(round(math.exp(math.log(lo) + u * (math.log(short) - math.log(lo)))))
        side = max(lo, min(short, side))
    y = int(torch.randint(0, h - side + 1, (), generator=g))
    x = int(torch.randint(0, w - side + 1, (), generator=g))
    c = to_model_range(img[:, y : y + side, x : x + side])[None]
    if side != res:
        c = F.interpolate(c, size=(res, res), mode="bilinear", antialias=side > res, align_corners=False)
    c = c[0]
    if torch.rand((), generator=g).item() < 0.5:
        c = c.flip(-1)
    if dihedral:
        c = torch.rot90(c, int(torch.randint(0, 4, (), generator=g)), dims=(-2, -1))
    return c.clamp(-1, 1)


class CropSampler:
    """Draws batches of random crops from a list of uint8 images (images weighted equally)."""

    def __init__(
        self,
        images: list[torch.Tensor],
        res: int,
        seed: int = 0,
        min_side: int | None = None,
        p_whole: float = 0.25,
        dihedral: bool = False,
    ):
        self.images, self.res, self.min_side, self.p_whole, self.dihedral = images, res, min_side, p_whole, dihedral
        self.g = torch.Generator().manual_seed(seed)

    def batch(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self.images), (n,), generator=self.g)
        return torch.stack(
            [random_crop(self.images[i], self.res, self.g, self.min_side, self.p_whole, self.dihedral) for i in idx]
        )
