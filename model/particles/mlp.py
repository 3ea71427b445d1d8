"""A small MLP that learns the particle data set live: eps-prediction (DDPM) or flow matching.

The network maps (x (B, 2), tau (B,) in [0, 1]) to (B, 2): eps_hat at tau = t / T for ``"epsilon"``, v_hat at
tau = sigma for ``"flow"``. :func:`train` is a generator that yields a :class:`TrainProgress` every few steps, so a page
can draw the loss curve and samples while it runs. Every random draw (initial weights, batches, t, eps) comes from one
``torch.Generator`` seeded by :attr:`TrainConfig.seed`: the same settings give the same network, bit for bit.
The thread count is the caller's policy (the app and the tests run it on one torch thread).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from model.diffusion.forward import q_sample
from model.diffusion.reverse import EpsModel
from model.diffusion.schedule import Schedule
from model.particles import flow

KINDS = ("epsilon", "flow")


@dataclass(frozen=True)
class TrainConfig:
    """What :func:`train` does; frozen, so it is a cache key."""

    kind: str = "flow"  # "epsilon" (DDPM's eps-prediction) or "flow" (flow matching's velocity)
    steps: int = 1500  # optimiser steps
    batch: int = 256  # data points per step (drawn with replacement from the set)
    lr: float = 1e-2  # Adam's learning rate, cosine-decayed to 5 % of it
    hidden: int = 128  # width of the three hidden layers
    seed: int = 0  # seeds weights, batches, t and eps
    report_every: int = 50  # a TrainProgress every this many steps

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; choose epsilon or flow")
        if self.steps < 1 or self.batch < 1 or self.report_every < 1:
            raise ValueError("steps, batch and report_every must be at least 1")


class ParticleMLP(nn.Module):
    """(x (B, 2), tau (B,)) -> (B, 2). tau goes in as 16 Fourier features (frequencies 1 .. 100), and x beside its
    own 24 (frequencies 1, 2, 4 .. 32 per coordinate: without them a few seconds of training give blurred moons)."""

    def __init__(self, hidden: int = 128, n_freq: int = 8, n_xfreq: int = 6) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), n_freq)))
        self.register_buffer("xfreqs", 2.0 ** torch.arange(n_xfreq, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(2 + 2 * n_freq + 4 * n_xfreq, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        tau = torch.as_tensor(tau, dtype=x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
        angles = tau * self.freqs  # (B, n_freq)
        xa = (x[:, :, None] * self.xfreqs).reshape(x.shape[0], -1)  # (B, 2 * n_xfreq)
        feats = [x, torch.sin(angles), torch.cos(angles), torch.sin(xa), torch.cos(xa)]
        return self.net(torch.cat(feats, dim=1))

    def init_weights(self, generator: torch.Generator) -> ParticleMLP:
        """PyTorch's default Linear init (uniform in +-1/sqrt(fan_in)), drawn from ``generator``."""
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
        return self


@dataclass
class TrainProgress:
    """One report of :func:`train`: ``step`` of ``of`` done, the losses so far (one per step), the network now."""

    step: int
    of: int
    losses: list[float]
    net: ParticleMLP
    seconds: float = 0.0
    done: bool = field(default=False)


def loss_on_batch(
    net: ParticleMLP, schedule: Schedule, x0: torch.Tensor, kind: str, g: torch.Generator
) -> torch.Tensor:
    """The simple loss on one batch x0 (B, 2): |eps_hat - eps|^2 at t ~ U{0..T-1} (Ho et al. eq. 14), or flow
    matching's |v_hat - (eps - x0)|^2 at sigma ~ U(0, 1)."""
    b = x0.shape[0]
    eps = torch.randn(x0.shape, generator=g)
    if kind == "epsilon":
        t = torch.randint(0, schedule.T, (b,), generator=g)
        x_t, _ = q_sample(schedule, x0, t, noise=eps)
        return (net(x_t, t.float() / schedule.T) - eps).pow(2).mean()
    sigma = torch.rand(b, generator=g)
    x_s = flow.interpolate(x0, eps, sigma)
    return (net(x_s, sigma) - flow.target_velocity(x0, eps)).pow(2).mean()


def train(points: torch.Tensor, schedule: Schedule, config: TrainConfig) -> Iterator[TrainProgress]:
    """Train a fresh :class:`ParticleMLP` on ``points`` (N, 2); yields progress every ``config.report_every`` steps
    and once at the end (``done=True``). The caller may stop iterating at any time (a time cap)."""
    g = torch.Generator().manual_seed(int(config.seed))
    net = ParticleMLP(config.hidden).init_weights(g)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps, eta_min=0.05 * config.lr)
    losses: list[float] = []
    start = time.perf_counter()
    pts = points.float()
    for step in range(1, config.steps + 1):
        idx = torch.randint(0, len(pts), (config.batch,), generator=g)
        loss = loss_on_batch(net, schedule, pts[idx], config.kind, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % config.report_every == 0 or step == config.steps:
            yield TrainProgress(step, config.steps, losses, net, time.perf_counter() - start, step == config.steps)


def train_to_end(points: torch.Tensor, schedule: Schedule, config: TrainConfig) -> TrainProgress:
    """Run :func:`train` to the end and return its last report."""
    reports = list(train(points, schedule, config))
    return reports[-1]


def as_eps_model(net: nn.Module, schedule: Schedule) -> EpsModel:
    """The trained eps-network as an ``eps_model(x_t, t)`` (t: a (B,) tensor of int or float timesteps)."""

    @torch.no_grad()
    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return net(x_t.float(), torch.as_tensor(t, dtype=torch.float32) / schedule.T)

    return model


def as_velocity_model(net: nn.Module) -> flow.VelocityModel:
    """The trained flow network as a ``velocity_model(x_sigma, sigma)``."""

    @torch.no_grad()
    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return net(x.float(), torch.as_tensor(sigma, dtype=torch.float32))

    return model
