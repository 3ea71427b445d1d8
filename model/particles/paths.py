"""Particle paths from pure noise to data: the DDPM/DDIM sampler of :mod:`model.diffusion.trajectory` (ODE and SDE on
the same seeds) and Euler on a flow-matching velocity, plus how straight each path is.

Shapes: a path tensor is (S + 1, B, 2): the start, then the state after each of the S steps.
"""

from __future__ import annotations

import torch

from model.diffusion.reverse import EpsModel
from model.diffusion.schedule import Schedule
from model.diffusion.trajectory import make_timesteps, sample_trajectory
from model.particles import flow


def start_noise(n: int, seed: int, dim: int = 2) -> torch.Tensor:
    """x_T ~ N(0, I): (n, dim) from ``torch.Generator().manual_seed(seed)`` (the same seed, the same start)."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(int(seed)))


def vp_paths(
    eps_model: EpsModel, schedule: Schedule, x_T: torch.Tensor, num_steps: int, sampler: str, seed: int = 0
) -> torch.Tensor:
    """Run DDIM (``"ddim"``, eta = 0: the probability-flow ODE) or DDPM (``"ddpm"``: the SDE) from x_T at
    t = T-1 down to the clean data in ``num_steps`` steps, through the project's one trajectory generator.

    The DDPM noise comes from a generator seeded with ``seed``. x0_hat is not clipped (particles may leave [-1, 1]).
    :returns: (num_steps + 1, B, 2)."""
    gen = torch.Generator().manual_seed(int(seed))
    steps = make_timesteps(schedule.T - 1, num_steps)
    path = [x_T]
    for rec in sample_trajectory(eps_model, schedule, x_T, steps, sampler=sampler, generator=gen, clip=False):
        path.append(rec.x_prev)
    return torch.stack(path)


def vp_path_in_flow_coords(path: torch.Tensor, schedule: Schedule, num_steps: int) -> torch.Tensor:
    """A :func:`vp_paths` path rescaled to the flow frame x / (sqrt(alpha_bar) + sqrt(1 - alpha_bar)), where one
    point's DDIM path is a straight line. (S + 1, B, 2)."""
    ts = make_timesteps(schedule.T - 1, num_steps)
    abs_ = [schedule.alpha_bar_floats[t] for t in ts] + [1.0]  # after the last step: the clean image
    return torch.stack([flow.to_flow_coords(x, ab) for x, ab in zip(path, abs_, strict=True)])


def straightness(path: torch.Tensor) -> torch.Tensor:
    """|end - start| / (length of the polyline) per particle, in (0, 1]: 1 is a straight line. (B,)."""
    steps = (path[1:] - path[:-1]).norm(dim=-1).sum(0)
    chord = (path[-1] - path[0]).norm(dim=-1)
    return chord / steps.clamp(min=1e-12)


def max_off_chord(path: torch.Tensor) -> torch.Tensor:
    """The largest distance of any point of each path from the straight segment start -> end. (B,)."""
    a, b = path[0], path[-1]
    d = b - a
    u = ((path - a) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-20)
    nearest = a + u.clamp(0, 1)[..., None] * d
    return (path - nearest).norm(dim=-1).max(0).values
