"""What the particle lab's page shows, as pure functions of its settings: the exact field on a grid at one t, the
paths from noise to data, and a trained network's field and samples beside the exact ones.

The page reads its widgets, calls these (through :mod:`app.compute.particles`) and draws. Two parametrisations,
chosen by ``flow``: eps-prediction on the project's VP schedule (DDPM/DDIM), or flow matching with
sigma = (t + 1) / T (sigma = 1 at t = T - 1, so one slider drives both).

Shapes: points (N, 2); the grid (G * G, 2); fields are shaped like the grid; paths (S + 1, B, 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.diffusion.forward import q_sample
from model.diffusion.schedule import Schedule
from model.particles import exact, flow, metrics, mlp, paths

GRID_N = 17  # arrows per side of the field's grid
GRID_EXTENT = 1.4  # the grid spans [-GRID_EXTENT, GRID_EXTENT]^2
N_PATHS = 48  # particles whose paths are drawn
N_SAMPLES = 600  # samples drawn from a trained network
SAMPLE_STEPS = 16  # sampling steps for a trained network's samples
NOISE_SEED = 1  # the seed of the noise that makes section 1's noisy points


def grid(n: int = GRID_N) -> torch.Tensor:
    """An n x n grid of points over [-GRID_EXTENT, GRID_EXTENT]^2, row by row: (n * n, 2) float32."""
    axis = torch.linspace(-GRID_EXTENT, GRID_EXTENT, n)
    return torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)


def flow_sigma(schedule: Schedule, t: int) -> float:
    """Flow matching's noise level for the slider's t: (t + 1) / T, in (0, 1]."""
    return (int(t) + 1) / schedule.T


@dataclass(frozen=True)
class ExactField:
    """Section 1: the points noised to t (``noisy``, (N, 2)), and the exact field on :func:`grid` (``field``): the
    probability-flow drift at t, or -v at sigma (where a particle moves as the noise falls)."""

    grid: torch.Tensor
    field: torch.Tensor
    noisy: torch.Tensor
    sigma: float  # flow matching's noise level (used when ``flow``)


def exact_field(schedule: Schedule, points: torch.Tensor, t: int, flow_matching: bool) -> ExactField:
    """The exact denoiser's field of ``points`` at timestep ``t`` and the points noised to t (seed :data:`NOISE_SEED`)."""
    g, sigma = grid(), flow_sigma(schedule, t)
    noise = paths.start_noise(len(points), seed=NOISE_SEED)
    if flow_matching:
        noisy = flow.interpolate(points, noise, sigma)
        field = -exact.exact_velocity(points, g, sigma)  # sampling runs sigma down, so particles move along -v
    else:
        noisy, _ = q_sample(schedule, points, t, noise=noise)
        field = exact.vp_drift(schedule, g, t, exact.vp_eps_hat(schedule, points, g, t))
    return ExactField(g, field, noisy, sigma)


def exact_paths(
    schedule: Schedule, points: torch.Tensor, steps: int, seed: int, flow_matching: bool
) -> dict[str, torch.Tensor]:
    """Section 2: the exact denoiser's paths from the same x_T (:data:`N_PATHS` particles, seed ``seed + 11``), by
    sampler name: the ODE (DDIM for eps-prediction, Euler on v for flow matching) and the SDE (DDPM).

    For flow matching the SDE is DDPM's, drawn in the flow frame x / (sqrt(alpha_bar) + sqrt(1 - alpha_bar))
    (:func:`model.particles.paths.vp_path_in_flow_coords`): the same marginals, so it shows where the flow's own
    stochastic sampler goes. It starts from the ODE's x_T exactly (scaled into the VP state at t = T - 1)."""
    x_T = paths.start_noise(N_PATHS, seed=int(seed) + 11)
    model = exact.exact_eps_model(schedule, points)
    if flow_matching:
        ab = schedule.alpha_bar_floats[-1]
        vp_start = x_T * (ab**0.5 + (1 - ab) ** 0.5)
        sde = paths.vp_paths(model, schedule, vp_start, steps, "ddpm", seed=3)
        return {
            "ODE (Euler on v̂)": flow.flow_paths(exact.exact_velocity_model(points), x_T, steps),
            "SDE (DDPM, in the flow frame)": paths.vp_path_in_flow_coords(sde, schedule, steps),
        }
    return {
        "ODE (DDIM, η = 0)": paths.vp_paths(model, schedule, x_T, steps, "ddim"),
        "SDE (DDPM)": paths.vp_paths(model, schedule, x_T, steps, "ddpm", seed=3),
    }


def nearest_distance(path: torch.Tensor, points: torch.Tensor) -> float:
    """The mean distance of a path's end points to the nearest data point."""
    return float(torch.cdist(path[-1], points).min(1).values.mean())


@dataclass(frozen=True)
class Learned:
    """Section 3: a trained network's field on the grid at t (the same kind as :class:`ExactField`'s), its
    :data:`N_SAMPLES` samples after :data:`SAMPLE_STEPS` steps, and their MMD² to the data (NaN for one point)."""

    field: torch.Tensor
    samples: torch.Tensor
    mmd: float


def learned(
    schedule: Schedule,
    net: mlp.ParticleMLP,
    points: torch.Tensor,
    grid_points: torch.Tensor,
    t: int,
    flow_matching: bool,
) -> Learned:
    """The trained ``net``'s field on ``grid_points`` at ``t`` and its samples, compared with ``points``."""
    xs = paths.start_noise(N_SAMPLES, seed=5)
    with torch.no_grad():
        if flow_matching:
            velocity = mlp.as_velocity_model(net)
            sigma = flow_sigma(schedule, t)
            field = -velocity(grid_points, torch.full((len(grid_points),), sigma))
            samples = flow.flow_paths(velocity, xs, SAMPLE_STEPS)[-1]
        else:
            eps_model = mlp.as_eps_model(net, schedule)
            eps = eps_model(grid_points, torch.full((len(grid_points),), t))
            field = exact.vp_drift(schedule, grid_points, t, eps)
            samples = paths.vp_paths(eps_model, schedule, xs, SAMPLE_STEPS, "ddim")[-1]
    score = metrics.mmd(samples, points) if len(points) > 1 else float("nan")
    return Learned(field, samples, score)
