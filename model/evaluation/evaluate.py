"""Evaluate a noise-predictor checkpoint on held-out photos against classical denoisers.

    python -m model.cli.evaluate checkpoints/photo-unet --images data/eval --res 64 --save-grid grid.png

Each photo is center-cropped to a square and resized to ``--res`` px (the whole photo,
not a patch), scaled to [-1, 1], and noised to x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε with fixed
seeds. Per t the table gives, on the SAME noisy inputs:

* ``eps_mse``   the model's ε-MSE (its output converted to ε if it predicts v or x_0)
* ``model``     PSNR of the model's x̂_0 = (x_t - √(1-ᾱ_t) ε̂)/√ᾱ_t
* ``rescaled``  PSNR of x_t/√ᾱ_t = x_0 + σ_t ε, σ_t = √((1-ᾱ_t)/ᾱ_t) (no denoising)
* ``blur``      PSNR of the best Gaussian blur of x_t/√ᾱ_t; the blur σ (pixels) is chosen per t
  from a grid, as an oracle that sees the clean images (σ in the next column)
* ``bm3d``      PSNR of BM3D (``bm3d.bm3d_rgb``) on x_t/√ᾱ_t given the true noise std.
  Images are mapped [-1, 1] → [0, 1] for BM3D, so its noise std is σ_t / 2.

PSNR is computed on images clipped to [-1, 1] with peak-to-peak 2, i.e. the usual PSNR
of the [0, 1] images, averaged over photos and noise seeds (in dB). After the table, one
line per t gives each photo's model − BM3D margin (mean over its seeds): with three photos a
small mean margin can hide a photo on which BM3D is ahead. ``--json`` keeps both.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.diffusion.forward import q_sample
from model.diffusion.reverse import output_to_eps, predict_x0
from model.images.figure import psnr as image_psnr

DEFAULT_TS = (25, 50, 100, 200, 400, 600, 800, 950)
BLUR_SIGMAS = (
    0.0,
    0.4,
    0.6,
    0.8,
    1.0,
    1.25,
    1.5,
    2.0,
    2.5,
    3.0,
    4.0,
    5.0,
    6.0,
    8.0,
    10.0,
    13.0,
    16.0,
    24.0,
    32.0,
    64.0,
)


# --------------------------------------------------------------------------- metrics
def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """:func:`model.images.figure.psnr` (dB, images in [-1, 1] clipped, peak-to-peak 2) of each image.

    Accepts (C, H, W) (returns a 0-d float64 tensor) or (B, C, H, W) (returns shape (B,)). Identical images give inf.
    """
    if x.ndim == 3:
        return torch.tensor(image_psnr(x, ref), dtype=torch.float64)
    return torch.tensor([image_psnr(a, b) for a, b in zip(x, ref, strict=True)], dtype=torch.float64)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflect padding; sigma in pixels (0 = identity)."""
    if sigma <= 0:
        return x.clone()
    h, w = x.shape[-2:]
    radius = int(math.ceil(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    y = x
    # reflect padding needs pad < size; for wide kernels pad repeatedly in chunks via 'replicate' fallback
    for dim in (-1, -2):
        size = w if dim == -1 else h
        pad = radius
        if pad < size:
            p = (pad, pad, 0, 0) if dim == -1 else (0, 0, pad, pad)
            y = F.pad(y, p, mode="reflect")
        else:
            p = (pad, pad, 0, 0) if dim == -1 else (0, 0, pad, pad)
            y = F.pad(y, p, mode="replicate")
        kk = k.view(1, 1, 1, -1) if dim == -1 else k.view(1, 1, -1, 1)
        y = F.conv2d(y, kk.expand(c, 1, *kk.shape[-2:]).contiguous(), groups=c)
    return y


def blur_oracle(noisy: torch.Tensor, clean: torch.Tensor, sigmas=BLUR_SIGMAS) -> tuple[float, float, torch.Tensor]:
    """Best Gaussian blur (one σ for the whole batch) by mean PSNR. Returns (σ, mean PSNR, per-image PSNR)."""
    best = None
    for s in sigmas:
        p = psnr(gaussian_blur(noisy, s), clean)
        if best is None or p.mean().item() > best[1] + 1e-12:
            best = (float(s), p.mean().item(), p)
    return best


def bm3d_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    """BM3D on (B, 3, H, W) images in [-1, 1] units with noise std ``sigma`` (same units)."""
    import bm3d

    out = []
    for img in noisy:
        z = (img.permute(1, 2, 0).double().numpy() + 1.0) / 2.0  # [0, 1] units; noise std sigma / 2
        d = bm3d.bm3d_rgb(z, sigma_psd=sigma / 2.0)
        out.append(torch.from_numpy(np.asarray(d, dtype=np.float64) * 2.0 - 1.0).permute(2, 0, 1).float())
    return torch.stack(out)


# --------------------------------------------------------------------------- model
def load_checkpoint(path):
    """(unet, schedule) of a diffusers folder or Hub id, loaded by :func:`model.nets.network.load_model`."""
    from model.nets.network import load_model

    loaded = load_model(str(path))
    return loaded.unet, loaded.schedule


def predict_eps(unet, sched, xt: torch.Tensor, t: int) -> torch.Tensor:
    """The model's ε̂ at integer timestep t, whatever its prediction_type (:func:`model.diffusion.reverse.output_to_eps`)."""
    tt = torch.full((xt.shape[0],), t, dtype=torch.long)
    return output_to_eps(sched, unet(xt, tt).sample.float(), xt, t)


def make_noisy(x0: torch.Tensor, sched, t: int, seeds: int, base_seed: int = 0):
    """x0 (N, 3, H, W) -> clean, eps, x_t each of shape (N*seeds, ...), noise fixed by (base_seed, t, seed)."""
    clean = x0.repeat_interleave(seeds, dim=0)
    g = torch.Generator().manual_seed(base_seed * 100_003 + t)
    eps = torch.randn(clean.shape, generator=g)
    xt, _ = q_sample(sched, clean, t, noise=eps)  # eq. 4
    return clean, eps, xt


@torch.inference_mode()
def evaluate(
    unet,
    sched,
    x0: torch.Tensor,
    ts=DEFAULT_TS,
    seeds: int = 2,
    base_seed: int = 0,
    use_bm3d: bool = True,
    batch: int = 32,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Rows of the evaluation table, plus x̂_0 / x_t/√ᾱ per t for the first photo and first seed (for grids)."""
    unet.eval()
    rows, pics = [], {}
    for t in ts:
        t0 = time.time()
        clean, eps, xt = make_noisy(x0, sched, t, seeds, base_seed)
        eps_hat = torch.cat([predict_eps(unet, sched, xt[i : i + batch], t) for i in range(0, len(xt), batch)])
        x0_hat = predict_x0(sched, xt, eps_hat, t).clamp(-1, 1)  # eq. 15
        rescaled = xt / sched.alpha_bar_floats[t] ** 0.5
        sigma = float((sched.sqrt_one_minus_alpha_bar[t] / sched.sqrt_alpha_bar[t]).item())
        s_blur, p_blur, _ = blur_oracle(rescaled, clean)
        p_model = psnr(x0_hat, clean)
        p_bm3d = psnr(bm3d_denoise(rescaled, sigma), clean) if use_bm3d else None
        row = {
            "t": t,
            "sigma": sigma,
            "eps_mse": ((eps_hat - eps) ** 2).mean().item(),
            "model": p_model.mean().item(),
            "rescaled": psnr(rescaled, clean).mean().item(),
            "blur": p_blur,
            "blur_sigma": s_blur,
            "bm3d": p_bm3d.mean().item() if use_bm3d else float("nan"),
            # per photo (mean over its noise seeds), so a small margin can be checked photo by photo
            "model_per_photo": per_photo(p_model, seeds),
            "bm3d_per_photo": per_photo(p_bm3d, seeds) if use_bm3d else None,
        }
        rows.append(row)
        pics[t] = {"x0_hat": x0_hat[::seeds].clone(), "rescaled": rescaled[::seeds].clamp(-1, 1).clone()}
        if progress:
            print(f"  t={t}: done in {time.time() - t0:.1f}s", flush=True)
    return rows, pics


def per_photo(values: torch.Tensor, seeds: int) -> list[float]:
    """Per-image values of shape (N*seeds,), photo-major as make_noisy lays them out -> N means over seeds."""
    return values.double().view(-1, seeds).mean(dim=1).tolist()


def format_per_photo(rows: list[dict], names: list[str]) -> str:
    """One line per t: model − BM3D in dB for each photo (paired: the same noisy inputs), where BM3D ran."""
    lines = []
    for r in rows:
        if r.get("bm3d_per_photo"):
            diffs = [m - b for m, b in zip(r["model_per_photo"], r["bm3d_per_photo"], strict=True)]
            lines.append(
                f"t={r['t']}: model − BM3D per photo: "
                + ", ".join(f"{n} {d:+.3f}" for n, d in zip(names, diffs, strict=True))
            )
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    head = (
        "| t | σ_t | ε-MSE | model x̂₀ PSNR | x_t/√ᾱ PSNR | best blur PSNR (σ px) | BM3D PSNR | model − BM3D | "
        "model − blur |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        ran = not math.isnan(r["bm3d"])  # --no-bm3d leaves it NaN: print a dash, not "nan | +nan"
        bm3d = f"{r['bm3d']:.2f} | {r['model'] - r['bm3d']:+.2f}" if ran else "– | –"
        lines.append(
            f"| {r['t']} | {r['sigma']:.3g} | {r['eps_mse']:.5f} | {r['model']:.2f} | {r['rescaled']:.2f} | "
            f"{r['blur']:.2f} ({r['blur_sigma']:g}) | {bm3d} | {r['model'] - r['blur']:+.2f} |"
        )
    return "\n".join(lines)


def _to_pil(x: torch.Tensor, scale: int = 2):
    from PIL import Image

    a = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    im = Image.fromarray(a)
    return im.resize((im.width * scale, im.height * scale), Image.NEAREST) if scale != 1 else im


def save_grid(path: Path, clean: torch.Tensor, pics: dict, index: int = 0, scale: int = 2) -> None:
    """Row 1: clean, then x_t/√ᾱ_t per t; row 2: clean, then the model's x̂_0 per t (one photo, one seed)."""
    from PIL import Image, ImageDraw

    ts = sorted(pics)
    tiles = [
        [_to_pil(clean[index], scale)] + [_to_pil(pics[t]["rescaled"][index], scale) for t in ts],
        [_to_pil(clean[index], scale)] + [_to_pil(pics[t]["x0_hat"][index], scale) for t in ts],
    ]
    w, h = tiles[0][0].size
    pad = 14
    grid = Image.new("RGB", (len(tiles[0]) * (w + 2), 2 * (h + pad) + pad), "white")
    d = ImageDraw.Draw(grid)
    d.text((2, 1), "clean", fill="black")
    for j, t in enumerate(ts, start=1):
        d.text((j * (w + 2) + 2, 1), f"t={t}", fill="black")
    for i, row in enumerate(tiles):
        for j, im in enumerate(row):
            grid.paste(im, (j * (w + 2), pad + i * (h + pad)))
    d.text((2, pad + h + 1), "top: x_t/sqrt(abar)   bottom: model x0_hat", fill="black")
    grid.save(path)


def save_high_t(path: Path, clean: torch.Tensor, pics: dict, t: int, scale: int = 2) -> None:
    """One column per photo: clean / x_t/√ᾱ_t / model x̂_0 at timestep t."""
    from PIL import Image

    cols = [
        [_to_pil(clean[i], scale), _to_pil(pics[t]["rescaled"][i], scale), _to_pil(pics[t]["x0_hat"][i], scale)]
        for i in range(len(clean))
    ]
    w, h = cols[0][0].size
    grid = Image.new("RGB", (len(cols) * (w + 2), 3 * (h + 2)), "white")
    for j, col in enumerate(cols):
        for i, im in enumerate(col):
            grid.paste(im, (j * (w + 2), i * (h + 2)))
    grid.save(path)
