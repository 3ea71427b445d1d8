"""Does it just copy? On particles: the exact denoiser of n training points against a small network trained on them.

The exact denoiser (:mod:`model.particles.exact`) is optimal for the training set, so its samples land on the
training points at every n. A small MLP (:mod:`model.particles.mlp`) trained on few points memorises them; trained
on many it fills in the shape between them (Kadkhodaie et al. 2024). The measure is the share of samples that lie
within :data:`RADIUS` of a training point, beside the share that fresh draws of the same data set reach by chance
(at large n the points are dense, so even a new point is often near one).

Shapes: points and particles (B, 2) float32; the schedule is the lab's (linear, T = 1000).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from model.diffusion.schedule import Schedule
from model.particles import data, exact, mlp
from model.particles.paths import start_noise, vp_paths

SIZES = (2, 8, 32, 128, 512, 2000)  # training-set sizes of the page's slider and the bench's curve
RADIUS = 0.02  # a sample within this distance of a training point counts as a near-copy (the moons span about 2;
# the exact denoiser ends a few samples 0.01 to 0.03 from a point where two points lie close together)


@dataclass(frozen=True)
class CopySettings:
    """One measurement; frozen, so a cache key."""

    n: int = 32  # training points (the first n of the seeded moons)
    seed: int = 0  # seeds the data, the start noise and the network
    particles: int = 400  # samples per denoiser
    steps: int = 200  # DDIM steps (the exact denoiser needs many to end exactly on a point)
    radius: float = RADIUS
    train_steps: int = 1000  # the MLP's optimiser steps


@dataclass(frozen=True)
class CopyPoint:
    """The shares (0..1) of near-copies: ``exact`` (the exact denoiser), ``network`` (None if not trained),
    ``chance`` (fresh draws of the data set); ``train_seconds`` the network's training time."""

    n: int
    exact: float
    chance: float
    network: float | None = None
    train_seconds: float | None = None


def near_copy_share(samples: torch.Tensor, points: torch.Tensor, radius: float = RADIUS) -> float:
    """The share of ``samples`` (B, 2) within ``radius`` of one of ``points`` (N, 2)."""
    d = torch.cdist(samples.double(), points.double()).min(1).values
    return float((d < radius).double().mean())


def training_points(s: CopySettings) -> torch.Tensor:
    """The n training points: seeded moons. (n, 2)."""
    if not 1 <= s.n <= data.MAX_POINTS:
        raise ValueError(f"choose between 1 and {data.MAX_POINTS} training points, not {s.n}")
    return data.make_dataset("moons", s.n, s.seed)


def exact_samples(schedule: Schedule, points: torch.Tensor, s: CopySettings) -> torch.Tensor:
    """The exact denoiser's samples from the seeded start noise, DDIM: (particles, 2)."""
    x_T = start_noise(s.particles, s.seed)
    return vp_paths(exact.exact_eps_model(schedule, points), schedule, x_T, s.steps, "ddim")[-1]


def train_network(schedule: Schedule, points: torch.Tensor, s: CopySettings) -> tuple[torch.nn.Module, float]:
    """A fresh eps-predicting :class:`model.particles.mlp.ParticleMLP` trained on ``points``: (net, seconds)."""
    start = time.perf_counter()
    net = mlp.train_to_end(points, schedule, mlp.TrainConfig(kind="epsilon", steps=s.train_steps, seed=s.seed)).net
    return net, time.perf_counter() - start


def network_samples(schedule: Schedule, net: torch.nn.Module, s: CopySettings) -> torch.Tensor:
    """The trained network's samples from the same start noise as :func:`exact_samples`: (particles, 2)."""
    x_T = start_noise(s.particles, s.seed)
    return vp_paths(mlp.as_eps_model(net, schedule), schedule, x_T, s.steps, "ddim")[-1]


def chance_share(points: torch.Tensor, s: CopySettings) -> float:
    """The near-copy share of fresh draws of the same data set (another seed): what chance alone gives."""
    fresh = data.make_dataset("moons", s.particles, s.seed + 1000)
    return near_copy_share(fresh, points, s.radius)


def measure(schedule: Schedule, s: CopySettings, train: bool = True) -> tuple[CopyPoint, dict[str, torch.Tensor]]:
    """One point of the memorisation curve, and the samples behind it (``points``, ``exact``, ``network``)."""
    points = training_points(s)
    ex = exact_samples(schedule, points, s)
    out = {"points": points, "exact": ex}
    point = CopyPoint(s.n, near_copy_share(ex, points, s.radius), chance_share(points, s))
    if train:
        net, seconds = train_network(schedule, points, s)
        out["network"] = network_samples(schedule, net, s)
        point = CopyPoint(s.n, point.exact, point.chance, near_copy_share(out["network"], points, s.radius), seconds)
    return point, out
