"""The one trajectory generator: :func:`sample_trajectory` yields, at every reverse step, t, x_t, eps_hat and x0_hat
(a :class:`StepRecord`); every page, export and benchmark consumes it. The steps themselves are in
:mod:`model.diffusion.reverse`, whose conventions (shapes, t, ``eps_model``) hold here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from model.diffusion.reverse import SAMPLERS, EpsModel, ddim_step, ddpm_step, predict_eps
from model.diffusion.schedule import Schedule


def make_timesteps(t_start: int, num_steps: int) -> list[int]:
    """``num_steps`` distinct timestep indices from ``t_start`` down to 0, evenly spaced.

    ``make_timesteps(999, 1000)`` is 999, 998, ..., 0; ``make_timesteps(999, 4)`` is
    999, 666, 333, 0. If ``num_steps > t_start + 1`` every index is visited once.
    """
    if t_start < 0:
        raise ValueError("t_start must be >= 0")
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    n = min(num_steps, t_start + 1)
    if n == 1:
        return [t_start]
    ts = torch.linspace(t_start, 0, n, dtype=torch.float64).round().long().tolist()
    out: list[int] = []
    for v in ts:
        if not out or v < out[-1]:
            out.append(int(v))
    return out


@dataclass(frozen=True)
class StepRecord:
    """One step of a reverse trajectory, everything a figure row needs.

    ``index``: 0-based step number. ``t``: timestep index of the input. ``t_prev``: where
    the step lands (-1 = clean). ``x_t``: the noisy input, ``eps_hat``: the predicted
    noise, ``x0_hat``: x_t with all of eps_hat removed, ``x_prev``: the step's output.
    Tensors are (B, C, H, W) float32 on the CPU.
    """

    index: int
    num_steps: int
    t: int
    t_prev: int
    x_t: torch.Tensor
    eps_hat: torch.Tensor
    x0_hat: torch.Tensor
    x_prev: torch.Tensor


def sample_trajectory(
    eps_model: EpsModel,
    schedule: Schedule,
    x_start: torch.Tensor,
    timesteps: Sequence[int],
    sampler: str = "ddim",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: bool | None = None,
) -> Iterator[StepRecord]:
    """Run the reverse process from ``x_start`` (which must be x at ``timesteps[0]``) down to 0.

    :param eps_model: callable ``(x_t, t) -> (eps_hat, x0_hat)`` such as ``LoadedModel.predict``,
        whose x0_hat, computed straight from the network output, the steps use; for an
        eps-predicting schedule it may return eps_hat alone (x0_hat is then eq. 15). A v- or
        sample-predicting schedule with eps_hat alone raises ``ValueError`` at the first step
        (:func:`model.diffusion.reverse.step_x0_hat`).
    :param x_start: (B, C, H, W), e.g. ``q_sample(x0, t_start)`` or pure noise for t_start = T-1.
    :param timesteps: strictly decreasing indices, e.g. :func:`make_timesteps`; the last
        step always lands on the clean image (t_prev = -1). DDPM adds no noise on that step,
        also where the timesteps end above 0, where diffusers adds some (see
        :func:`model.diffusion.reverse.ddpm_step`).
    :param sampler: ``"ddpm"`` (ancestral, stochastic) or ``"ddim"`` (eta = 0: deterministic).
    :yields: a :class:`StepRecord` per step, in order. The final sample is
        ``record.x_prev`` of the last record.
    """
    ts = [int(t) for t in timesteps]
    if not ts:
        raise ValueError("need at least one timestep")
    if any(b >= a for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError("timesteps must be strictly decreasing")
    if ts[0] >= schedule.T or ts[-1] < 0:
        raise ValueError(f"timesteps must lie in 0..{schedule.T - 1}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose ddpm or ddim")
    x = x_start
    n = len(ts)
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < n else -1
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        pred = eps_model(x, t_batch)
        eps_hat, x0_hat = pred if isinstance(pred, tuple) else (pred, None)
        if sampler == "ddpm":
            out = ddpm_step(schedule, eps_hat, t, x, generator, t_prev=t_prev, clip=clip, x0_hat=x0_hat)
        else:
            out = ddim_step(schedule, eps_hat, t, x, t_prev, eta=eta, generator=generator, clip=clip, x0_hat=x0_hat)
        yield StepRecord(i, n, t, t_prev, x, eps_hat, out.x0_hat, out.prev_sample)
        x = out.prev_sample


def oracle_eps_model(schedule: Schedule, x0: torch.Tensor) -> EpsModel:
    """An eps-model that knows x_0: it returns exactly the noise in x_t (for tests and teaching)."""

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return predict_eps(schedule, x_t, x0, t)

    return model
