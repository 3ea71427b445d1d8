"""The exact denoiser of a finite point set, and the fields it defines, in closed form.

If the data are N points x^(1..N) (each with probability 1/N) and ``x = scale * x_0 + std * eps``, the posterior over
which point was noised is a softmax, and the optimal (MMSE) denoiser is its weighted mean:

    w_i(x)  = softmax_i( -|x - scale * x^(i)|^2 / (2 std^2) )
    x0_hat  = sum_i w_i(x) x^(i)                    (Tweedie: the exact x0 estimate of an optimally trained network)

Two ways to noise share it:

* **epsilon-prediction (DDPM's variance-preserving process)**: scale = sqrt(alpha_bar_t), std = sqrt(1 - alpha_bar_t)
  (Ho et al. eq. 4), taken from :mod:`model.diffusion.schedule`; eps_hat follows from x0_hat by
  :func:`model.diffusion.reverse.predict_eps`.
* **flow matching (rectified flow)**: ``x_sigma = (1 - sigma) x_0 + sigma eps`` with sigma in [0, 1]; the velocity is
  ``v = eps - x_0`` and its exact value is ``v_hat = (x_sigma - x0_hat) / sigma`` (:mod:`model.particles.flow`).

Shapes: points (N, 2), particles x (B, 2), all float32 in about [-1, 1]. Timesteps follow the project's convention
(index 0 .. T-1, 0 = the first noising step); the continuous versions accept a float t and interpolate as diffusers'
``EulerDiscreteScheduler`` does (sigma = sqrt((1 - alpha_bar) / alpha_bar) linear in t between indices).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from model.diffusion.reverse import predict_eps
from model.diffusion.schedule import Schedule, alpha_bar_at
from model.particles import flow

SIGMA_FLOOR = 1e-6  # std below this is treated as this (the softmax is one-hot there anyway)


def posterior_weights(points: torch.Tensor, x: torch.Tensor, scale, std) -> torch.Tensor:
    """w_i(x) = softmax_i(-|x - scale x^(i)|^2 / (2 std^2)): (B, N), rows sum to 1.

    :param points: (N, 2) data. :param x: (B, 2) noisy particles.
    :param scale, std: floats, or (B, 1) tensors (one value per particle).
    """
    pts = points.to(torch.float64)
    xx = x.to(torch.float64)
    scale = torch.as_tensor(scale, dtype=torch.float64).reshape(-1, 1)
    std = torch.as_tensor(std, dtype=torch.float64).reshape(-1, 1).clamp(min=SIGMA_FLOOR)
    # |x - s p|^2 for every particle and point: (B, N)
    d2 = (xx[:, None, :] - scale[:, :, None] * pts[None, :, :]).pow(2).sum(-1)
    return torch.softmax(-d2 / (2 * std**2), dim=1)


def exact_x0_hat(points: torch.Tensor, x: torch.Tensor, scale, std) -> torch.Tensor:
    """x0_hat(x) = sum_i w_i(x) x^(i), the exact denoiser of the point set: (B, 2) in x's dtype."""
    w = posterior_weights(points, x, scale, std)
    return (w @ points.to(torch.float64)).to(x.dtype)


def vp_x0_hat(schedule: Schedule, points: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
    """The exact x0_hat for VP-noised particles x_t (B, 2) at timestep t (int, float or (B,) tensor)."""
    ab = alpha_bar_at(schedule, t).reshape(-1, 1)
    return exact_x0_hat(points, x_t, ab.sqrt(), (1 - ab).sqrt())


def vp_eps_hat(schedule: Schedule, points: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
    """The exact eps_hat = (x_t - sqrt(alpha_bar) x0_hat) / sqrt(1 - alpha_bar) (B, 2), any float t."""
    ab = alpha_bar_at(schedule, t).reshape(-1, 1)
    x0_hat = exact_x0_hat(points, x_t, ab.sqrt(), (1 - ab).sqrt())
    if _integral(t):  # the project's formula at an index (one home per formula)
        return predict_eps(schedule, x_t, x0_hat, torch.as_tensor(t, dtype=torch.long).reshape(-1))
    return ((x_t.double() - ab.sqrt() * x0_hat.double()) / (1 - ab).sqrt()).to(x_t.dtype)


def _integral(t) -> bool:
    tt = torch.as_tensor(t)
    return not tt.is_floating_point() or bool((tt == tt.round()).all())


def exact_eps_model(schedule: Schedule, points: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """An ``eps_model(x_t, t)`` for :func:`model.diffusion.trajectory.sample_trajectory`: the exact eps_hat."""
    return lambda x_t, t: vp_eps_hat(schedule, points, x_t, t)


def flow_x0_hat(points: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
    """The exact x0_hat for flow-matching particles x_sigma (B, 2) at sigma in [0, 1] (float or (B,) tensor)."""
    s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1)
    return exact_x0_hat(points, x, 1 - s, s)


def exact_velocity(points: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
    """The exact flow-matching velocity v_hat(x, sigma) = (x - x0_hat) / sigma: (B, 2)."""
    return flow.velocity_from_x0(x, flow_x0_hat(points, x, sigma), sigma)


def exact_velocity_model(points: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``velocity_model(x_sigma, sigma)`` for :func:`model.particles.flow.flow_paths`: the exact v_hat."""
    return lambda x, sigma: exact_velocity(points, x, sigma)


def vp_drift(schedule: Schedule, x_t: torch.Tensor, t: int, eps_hat: torch.Tensor) -> torch.Tensor:
    """Where the probability-flow ODE moves a particle while t runs down, per unit of t / T (Song et al. 2021, eq. 13):

        dx/d(-tau) = 1/2 beta(tau) (x_t + score),   score = -eps_hat / sqrt(1 - alpha_bar_t),   beta(tau) = T beta_t

    :returns: (B, 2) velocities (the direction DDIM moves each particle)."""
    beta = float(schedule.betas[int(t)]) * schedule.T
    s1 = (1.0 - schedule.alpha_bar_floats[int(t)]) ** 0.5
    return 0.5 * beta * (x_t - eps_hat / s1)
