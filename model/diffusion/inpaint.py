"""Can it fix my photo? Inpainting by RePaint (Lugmayr et al. 2022) with any unconditional eps-model.

At every reverse step the picture is two parts (RePaint eq. 8):

    x_{t_prev}^known    ~ q(x_{t_prev} | x_0)                  the photo's own pixels, noised to the step's level (eq. 4)
    x_{t_prev}^unknown  = the sampler's step from x_t           (DDPM or DDIM, :mod:`model.diffusion.reverse`)
    x_{t_prev}          = m * x^known + (1 - m) * x^unknown     m = 1 where the photo is kept

so the network sees, at every step, a noisy picture whose kept part is exactly as noisy as it expects, and fills in
the rest to match. *Resampling* (RePaint's section 4.2): after a step, noise x_{t_prev} back to x_t with
q(x_t | x_{t_prev}) and take the step again, ``resample - 1`` more times, which lets the filled part agree better
with the kept part. With nothing kept (m = 0 everywhere) this is plain sampling.

The steps are the project's (:func:`model.diffusion.reverse.ddpm_step`, :func:`~model.diffusion.reverse.ddim_step`,
on :func:`model.diffusion.trajectory.make_timesteps`); each step yields an :class:`InpaintRecord`, the trajectory
record plus the two parts, so a page can show x_t, the known/unknown split and x0_hat at every step.

Shapes: x0 (1, C, H, W) in [-1, 1]; ``known`` (1, 1, H, W) float of 0 and 1 (1 = keep), broadcast over channels.
Timesteps: 0 .. T-1, 0 = the first noising step; t_prev = -1 is the clean image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.diffusion.forward import q_sample
from model.diffusion.reverse import SAMPLERS, EpsModel, ddim_step, ddpm_step
from model.diffusion.schedule import Schedule
from model.diffusion.trajectory import make_timesteps

MAX_HOLE = 0.9  # a hole larger than this share of the picture leaves too little to go by: refused with a sentence
MAX_RESAMPLE = 10


@dataclass(frozen=True)
class InpaintRecord:
    """One reverse step of an inpainting run: ``t`` -> ``t_prev`` (-1: clean); ``x_t`` the input, ``x0_hat`` the
    network's guess of the whole picture, ``known`` the photo noised to t_prev, ``unknown`` the sampler's step,
    ``x_prev`` = mask * known + (1 - mask) * unknown. Tensors (1, C, H, W)."""

    index: int
    num_steps: int
    t: int
    t_prev: int
    x_t: torch.Tensor
    x0_hat: torch.Tensor
    known: torch.Tensor
    unknown: torch.Tensor
    x_prev: torch.Tensor


def rectangle_mask(size: int, left: float, top: float, right: float, bottom: float) -> torch.Tensor:
    """``known`` for a size x size picture with the rectangle [left, right) x [top, bottom) (fractions of the side,
    0..1) to fill in: (1, 1, size, size), 0 inside the rectangle, 1 outside."""
    known = torch.ones(1, 1, size, size)
    x0, x1 = round(left * size), round(right * size)
    y0, y1 = round(top * size), round(bottom * size)
    known[..., y0:y1, x0:x1] = 0.0
    return known


def check_hole(known: torch.Tensor) -> None:
    """Raise ``ValueError`` with one sentence when the hole (known = 0) is empty, everything, or too large."""
    hole = 1.0 - float(known.mean())
    if hole <= 0.0:
        raise ValueError(
            "The hole is empty: drag the sliders to put a rectangle over the part of the photo to fill in."
        )
    if hole >= 1.0:
        raise ValueError(
            "The hole covers the whole photo, so nothing of it is kept: that is plain sampling (Reverse trajectory); "
            "make the rectangle smaller."
        )
    if hole > MAX_HOLE:
        raise ValueError(
            f"The hole covers {hole:.0%} of the photo: with less than {1 - MAX_HOLE:.0%} left there is too little "
            "to go by; make the rectangle smaller."
        )


def _renoise(schedule: Schedule, x: torch.Tensor, t_from: int, t_to: int, g: torch.Generator | None) -> torch.Tensor:
    """Sample q(x_{t_to} | x_{t_from}) for t_to > t_from (t_from = -1: the clean image): scale by
    sqrt(ab_to / ab_from) and add noise of variance 1 - ab_to / ab_from (Ho et al. eq. 2, over several steps)."""
    ab_from = 1.0 if t_from < 0 else schedule.alpha_bar_floats[t_from]
    ratio = schedule.alpha_bar_floats[t_to] / ab_from
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return ratio**0.5 * x + (1.0 - ratio) ** 0.5 * noise


def repaint(
    eps_model: EpsModel,
    schedule: Schedule,
    x0: torch.Tensor,
    known: torch.Tensor,
    num_steps: int,
    sampler: str = "ddpm",
    resample: int = 1,
    generator: torch.Generator | None = None,
    x_start: torch.Tensor | None = None,
) -> Iterator[InpaintRecord]:
    """Fill in where ``known`` is 0, keeping ``x0`` where it is 1: ``num_steps`` steps from pure noise at T - 1.

    :param eps_model: ``(x_t, t) -> eps_hat`` or ``(eps_hat, x0_hat)``, as in :func:`sample_trajectory`.
    :param sampler: "ddpm" or "ddim" (eta = 0). :param resample: steps taken per timestep (1: no resampling).
    :param x_start: the start x_{T-1} (default: N(0, I) from ``generator``).
    :yields: one :class:`InpaintRecord` per timestep (the last of its resamplings).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose ddpm or ddim")
    if not 1 <= resample <= MAX_RESAMPLE:
        raise ValueError(f"resampling must be 1 to {MAX_RESAMPLE} steps per timestep, got {resample}")
    if known.shape[-2:] != x0.shape[-2:]:
        raise ValueError(f"the mask is {tuple(known.shape[-2:])} px but the photo {tuple(x0.shape[-2:])} px")
    ts = make_timesteps(schedule.T - 1, num_steps)
    # the kept part's noise (and the jumps back) draw from their own generator, so the sampler's draws are those of
    # plain sampling with the same generator: with nothing kept, the run is sample_trajectory's, draw for draw
    kg = None if generator is None else torch.Generator().manual_seed(generator.initial_seed() + 1)
    x = torch.randn(x0.shape, generator=generator, dtype=x0.dtype) if x_start is None else x_start
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        for r in range(resample):
            x_t = x
            pred = eps_model(x_t, torch.full((x_t.shape[0],), t, dtype=torch.long))
            eps_hat, x0_hat = pred if isinstance(pred, tuple) else (pred, None)
            if sampler == "ddpm":
                out = ddpm_step(schedule, eps_hat, t, x_t, generator, t_prev=t_prev, x0_hat=x0_hat)
            else:
                out = ddim_step(schedule, eps_hat, t, x_t, t_prev, x0_hat=x0_hat)
            if t_prev >= 0:
                known_part, _ = q_sample(schedule, x0, t_prev, generator=kg)  # eq. 4
            else:
                known_part = x0
            x = known * known_part + (1.0 - known) * out.prev_sample
            if r + 1 < resample and t_prev >= 0:  # RePaint's jump back: x_{t_prev} -> x_t, then the step again
                x = _renoise(schedule, x, t_prev, t, kg)
            elif r + 1 < resample:
                break  # the last step lands on the clean image: nothing to resample
        yield InpaintRecord(i, len(ts), t, t_prev, x_t, out.x0_hat, known_part, out.prev_sample, x)


def blur_fill(x0: torch.Tensor, known: torch.Tensor, iterations: int = 300) -> torch.Tensor:
    """The plain baseline: fill the hole by repeated 3 x 3 averaging with the kept pixels held fixed (a harmonic
    fill, smooth and blurry). (1, C, H, W)."""
    fill = (x0 * known).sum((-2, -1), keepdim=True) / known.sum((-2, -1), keepdim=True).clamp(min=1)
    x = known * x0 + (1 - known) * fill
    for _ in range(iterations):
        avg = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        x = known * x0 + (1 - known) * avg
    return x


def psnr_in_hole(x: torch.Tensor, ref: torch.Tensor, known: torch.Tensor) -> float:
    """PSNR in dB between x and ref (both [-1, 1], clipped, peak-to-peak 2) over the hole's pixels only."""
    hole = (1.0 - known).expand_as(x).bool()
    mse = float((x.clamp(-1, 1).double() - ref.clamp(-1, 1).double())[hole].pow(2).mean())
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(4.0 / mse)).item()
