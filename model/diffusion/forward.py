"""The forward (noising) process q.

Shapes: images are ``(B, C, H, W)`` float32 tensors with values in about [-1, 1].
Timestep indices follow :mod:`model.diffusion.schedule`: ``t`` in ``0 .. T-1``, index 0 is
the first noising step. Randomness always comes from an explicit
``torch.Generator``; the same generator state gives the same noise.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from model.diffusion.schedule import Schedule, gather


def _check_t(schedule: Schedule, t) -> None:
    tt = torch.as_tensor(t)
    if tt.device.type != "cpu":  # checking a GPU tensor would wait for the GPU (training draws t there)
        return
    if bool((tt < 0).any()) or bool((tt >= schedule.T).any()):
        raise ValueError(f"timestep index must lie in 0..{schedule.T - 1}, got {t}")


def q_sample(
    schedule: Schedule,
    x0: torch.Tensor,
    t: int | torch.Tensor,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Jump straight to step t with the closed form q(x_t | x_0) (Ho et al. 2020, eq. 4):

        x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,   eps ~ N(0, I)

    :param x0: (B, C, H, W) clean images in [-1, 1].
    :param t: an int, or a LongTensor of shape (B,) with one index per image.
    :param generator: the source of eps (ignored when ``noise`` is given).
    :param noise: optional eps to use instead of drawing one, shape like ``x0``.
    :returns: ``(x_t, eps)``, both shaped like ``x0``; x_t has unit variance for large t.
    """
    _check_t(schedule, t)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype) if noise is None else noise
    x_t = (
        gather(schedule.sqrt_alpha_bar, t, x0.ndim, x0.dtype) * x0
        + gather(schedule.sqrt_one_minus_alpha_bar, t, x0.ndim, x0.dtype) * eps
    )
    return x_t, eps


def q_step(schedule: Schedule, x_prev: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One link of the Markov chain, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I) (eq. 2).

    :param x_prev: (B, C, H, W), the sample one step earlier (x_0 itself when t = 0).
    :returns: x_t, shaped like ``x_prev``.
    """
    _check_t(schedule, t)
    beta = float(schedule.betas[t])
    z = torch.randn(x_prev.shape, generator=generator, dtype=x_prev.dtype)
    return (1.0 - beta) ** 0.5 * x_prev + beta**0.5 * z


def q_chain(
    schedule: Schedule, x0: torch.Tensor, t: int, generator: torch.Generator | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """Walk the chain x_0 -> x_{index 0} -> ... -> x_{index t}, one q_step at a time.

    Yields ``(s, x_s)`` for s = 0 .. t (t + 1 links). The last sample has the same
    distribution as ``q_sample(schedule, x0, t)``: mean sqrt(alpha_bar_t) x_0 and
    variance 1 - alpha_bar_t per pixel.
    """
    _check_t(schedule, t)
    x = x0
    for s in range(t + 1):
        x = q_step(schedule, x, s, generator)
        yield s, x


def q_chain_sample(
    schedule: Schedule, x0: torch.Tensor, t: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The end point of :func:`q_chain`: x_t reached step by step. Shape like ``x0``."""
    last = x0
    for _, x_s in q_chain(schedule, x0, t, generator):
        last = x_s
    return last
