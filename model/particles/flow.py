"""Flow matching (rectified flow, Liu et al. 2023; Lipman et al. 2023) as the particle lab and the race use it.

Convention (diffusers' ``FlowMatchEulerDiscreteScheduler``): sigma runs from 1 (pure noise) to 0 (data),

    x_sigma = (1 - sigma) x_0 + sigma eps,        v = d x_sigma / d sigma = eps - x_0

and a network trained to predict v is sampled by integrating dx = v d sigma from sigma = 1 down to 0.

The same state is a rescaled DDPM state: with a = sqrt(alpha_bar_t), b = sqrt(1 - alpha_bar_t) (Ho et al. eq. 4),
x_sigma = x_t / (a + b) at sigma = b / (a + b). :func:`velocity_from_eps` uses that to run flow-matching samplers on an
eps-predicting network (the bundled Fashion generator), and :func:`to_flow_coords` to draw every sampler's path in one
frame. Shapes: x (B, ...) float32; sigma a float or a (B,) tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from model.diffusion.schedule import Schedule, alpha_bar_at

VelocityModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_sigma (B, ...), sigma (B,)) -> v_hat
SIGMA_MIN = 1e-4  # v = (x - x0_hat) / sigma is evaluated no closer to sigma = 0 than this


def _col(sigma, like: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, *([1] * (like.ndim - 1)))
    return s


def interpolate(x0: torch.Tensor, eps: torch.Tensor, sigma) -> torch.Tensor:
    """x_sigma = (1 - sigma) x_0 + sigma eps, shaped like x0."""
    s = _col(sigma, x0).to(x0.dtype)
    return (1 - s) * x0 + s * eps


def target_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """What a flow-matching network is trained to output: v = eps - x_0."""
    return eps - x0


def velocity_from_x0(x: torch.Tensor, x0_hat: torch.Tensor, sigma) -> torch.Tensor:
    """v_hat = (x_sigma - x0_hat) / sigma (from x_sigma = (1 - sigma) x0 + sigma eps, v = eps - x0)."""
    s = _col(sigma, x).clamp(min=SIGMA_MIN)
    return ((x.double() - x0_hat.double()) / s).to(x.dtype)


def x0_from_velocity(x: torch.Tensor, v: torch.Tensor, sigma) -> torch.Tensor:
    """x0_hat = x_sigma - sigma v_hat."""
    return x - _col(sigma, x).to(x.dtype) * v


def sigma_steps(num_steps: int) -> list[float]:
    """``num_steps + 1`` evenly spaced sigmas from 1 down to 0 (the Euler grid of :func:`flow_paths`)."""
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    return np.linspace(1.0, 0.0, num_steps + 1).tolist()


def flow_paths(velocity_model: VelocityModel, x1: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Euler on dx = v d sigma from sigma = 1 to 0: the path of every particle, (num_steps + 1, B, ...).

    :param x1: (B, ...) pure noise, the state at sigma = 1.
    """
    sigmas = sigma_steps(num_steps)
    x, path = x1, [x1]
    for s, s_next in zip(sigmas, sigmas[1:], strict=False):
        v = velocity_model(x, torch.full((x.shape[0],), s))
        x = x + (s_next - s) * v
        path.append(x)
    return torch.stack(path)


# --- the same state as a DDPM (variance-preserving) state ----------------------------------------------------------


def vp_sigmas(schedule: Schedule) -> np.ndarray:
    """sqrt((1 - alpha_bar_t) / alpha_bar_t) for t = 0 .. T-1 (increasing)."""
    return ((1 - schedule.alpha_bar) / schedule.alpha_bar).sqrt().numpy()


def flow_sigma_to_t(schedule: Schedule, sigma) -> np.ndarray:
    """The (float) DDPM timestep whose state is x_sigma up to a scale: sigma_vp = sigma / (1 - sigma), clamped to the
    schedule's range, then inverted with the linear interpolation of :func:`model.diffusion.schedule.alpha_bar_at`."""
    s = np.clip(np.asarray(sigma, dtype=np.float64), 0.0, 1.0 - 1e-9)
    s_vp = s / (1 - s)
    table = vp_sigmas(schedule)
    return np.interp(np.clip(s_vp, table[0], table[-1]), table, np.arange(schedule.T, dtype=np.float64))


def to_flow_coords(x_t: torch.Tensor, alpha_bar) -> torch.Tensor:
    """A DDPM state x_t = a x0 + b eps as the flow state x_sigma = x_t / (a + b) (shaped like x_t)."""
    ab = _col(alpha_bar, x_t)
    return (x_t.double() / (ab.sqrt() + (1 - ab).sqrt())).to(x_t.dtype)


def velocity_from_eps(
    schedule: Schedule,
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    clip_range: float | None = None,
) -> VelocityModel:
    """A flow-matching velocity model made from an eps-predictor ``eps_fn(x_t, t)`` (t a (B,) float tensor).

    x_t = (a + b) x_sigma at the matching t (:func:`flow_sigma_to_t`), x0_hat = (x_t - b eps_hat) / a (eq. 15) and
    v_hat = (x_sigma - x0_hat) / sigma, which is eps_hat - x0_hat wherever sigma is in the schedule's range; outside
    it (sigma = 1, or below the first step's noise) the nearest step's x0_hat stands in. ``clip_range``: clamp x0_hat
    to [-clip_range, clip_range] first (diffusers' ``clip_sample``, for a model sampled with it); None: no clamp."""

    def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sig = torch.as_tensor(sigma).reshape(-1)
        t = torch.as_tensor(flow_sigma_to_t(schedule, sig.numpy()))
        ab = _col(alpha_bar_at(schedule, t), x)
        a, b = ab.sqrt(), (1 - ab).sqrt()
        x_t = (x.double() * (a + b)).to(x.dtype)
        eps_hat = eps_fn(x_t, t.expand(x.shape[0]) if t.numel() == 1 else t).double()
        x0_hat = (x_t.double() - b * eps_hat) / a
        if clip_range is not None:
            x0_hat = x0_hat.clamp(-clip_range, clip_range)
        return velocity_from_x0(x, x0_hat, sig.expand(x.shape[0]) if sig.numel() == 1 else sig)

    return velocity
