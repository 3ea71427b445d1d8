"""Pictures of an :class:`model.emoji.sample.EmojiRun`, pure Pillow (the command line's PNGs; the page draws its own).

* :func:`samples_grid`: the finished pictures side by side.
* :func:`step_figure`: the blog-style figure: one row per chosen step, columns the latent x_t (its 4 channels as a
  2×2 mosaic, [-3, 3] to black..white), the decoded x̂₀, then each word's cross-attention map over x̂₀.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from model.emoji.data import to_uint8
from model.images.figure import pick_rows
from model.images.labels import label_font

CELL = 96
GAP = 6
LABEL = 80
HEADER = 28


def latent_mosaic(z: torch.Tensor) -> np.ndarray:
    """(4, 8, 8) latent -> (16, 16) uint8: channels 0 1 / 2 3, [-3, 3] mapped to 0..255."""
    m = torch.cat([torch.cat([z[0], z[1]], 1), torch.cat([z[2], z[3]], 1)], 0)
    return ((m.clamp(-3, 3) + 3) / 6 * 255).round().to(torch.uint8).numpy()


def attention_overlay(picture: np.ndarray, att: torch.Tensor) -> np.ndarray:
    """(32, 32, 3) uint8 picture and an (8, 8) map -> the picture dimmed where the word does not attend."""
    a = torch.nn.functional.interpolate(att[None, None], size=picture.shape[:2], mode="bilinear", align_corners=False)[
        0, 0
    ]
    a = (a / a.max().clamp_min(1e-8)).numpy()[..., None]
    return (picture * (0.15 + 0.85 * a)).astype(np.uint8)


def _paste(img: Image.Image, arr: np.ndarray, xy: tuple[int, int]) -> None:
    img.paste(Image.fromarray(arr).resize((CELL, CELL), Image.Resampling.NEAREST), xy)


def samples_grid(run, cols: int = 8) -> Image.Image:
    pics = to_uint8(run.final)
    rows = (len(pics) + cols - 1) // cols
    img = Image.new("RGB", (min(len(pics), cols) * (CELL + GAP), rows * (CELL + GAP)), "white")
    for i, p in enumerate(pics):
        _paste(img, p, ((i % cols) * (CELL + GAP), (i // cols) * (CELL + GAP)))
    return img


def step_figure(run, rows: int = 6, b: int = 0) -> Image.Image:
    """One row per step (``rows`` evenly spaced, first and last included) of picture ``b`` of ``run``."""
    words = run.tokens[1:] if run.attention is not None else []
    heads = ["x_t (latent)", "x0_hat", *words]
    idx = pick_rows(len(run.timesteps), rows)
    img = Image.new("RGB", (LABEL + len(heads) * (CELL + GAP), HEADER + len(idx) * (CELL + GAP)), "white")
    draw, font = ImageDraw.Draw(img), label_font(13)
    for c, h in enumerate(heads):
        draw.text((LABEL + c * (CELL + GAP) + CELL // 2, HEADER // 2), h[:14], fill="black", font=font, anchor="mm")
    for r, i in enumerate(idx):
        y = HEADER + r * (CELL + GAP)
        draw.text((LABEL // 2, y + CELL // 2), f"t = {run.timesteps[i]}", fill="black", font=font, anchor="mm")
        x0 = to_uint8(run.x0_pictures[i, b : b + 1])[0]
        _paste(img, np.repeat(latent_mosaic(run.x_t[i, b])[..., None], 3, 2), (LABEL, y))
        _paste(img, x0, (LABEL + CELL + GAP, y))
        for k in range(len(words)):
            _paste(img, attention_overlay(x0, run.attention[i, b, k + 1]), (LABEL + (k + 2) * (CELL + GAP), y))
    return img
