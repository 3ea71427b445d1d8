"""The reverse (denoising) process p_theta: x0_hat, the posterior, DDPM and DDIM steps (the one trajectory
generator that every page, export and benchmark consumes is :mod:`model.diffusion.trajectory`).

Conventions
-----------
* Images ``x_t`` are ``(B, C, H, W)`` float32, about [-1, 1] for small t and about
  N(0, I) for t near T-1.
* Timestep indices ``t`` run 0 .. T-1; index 0 is the first noising step
  (see :mod:`model.diffusion.schedule`). A step goes from index ``t`` to ``t_prev < t``;
  ``t_prev = -1`` means "to the clean image", where alpha_bar is taken as 1.
* The reparametrisations and the posterior take ``t`` as an int or as a (B,) LongTensor
  (one index per image; improved-diffusion's ``_extract_into_tensor`` pattern), so
  training, evaluation, the bound and the pages all call these one formulas.
* ``eps_model(x_t, t)`` is any callable taking ``x_t`` (B, C, H, W) and a LongTensor
  ``t`` of shape (B,), and returning the pair ``(eps_hat, x0_hat)`` (``LoadedModel.predict``),
  whose x0_hat the steps then use, or, for an eps-predicting schedule only, eps_hat alone
  (shaped like ``x_t``; the steps then take x0_hat from eq. 15). For a v- or sample-predicting
  schedule the steps refuse eps_hat alone (see :func:`step_x0_hat`).
* Steps are pure functions: nothing is mutated, so one model and one schedule can
  serve every session at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.diffusion.schedule import Schedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SAMPLERS = ("ddpm", "ddim")


def _ab(schedule: Schedule, t: int) -> float:
    """alpha_bar at index t, with alpha_bar_{-1} = 1 (the clean image)."""
    return 1.0 if t < 0 else schedule.alpha_bar_floats[t]


Timestep = int | torch.Tensor  # an int index, or a (B,) LongTensor with one index per image


def _per_row(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor, at_minus_one: float) -> torch.Tensor:
    """``values[t]`` per row as (B, 1, 1, ...) in ``like``'s dtype and device (improved-diffusion's
    ``_extract_into_tensor``); rows with t = -1 get ``at_minus_one``. The values are cast to ``like``'s
    dtype and indexed on t's device (no host round trip: training on a GPU never waits for it)."""
    idx = t.to(torch.long).reshape(-1)
    picked = values.to(device=idx.device, dtype=like.dtype)[idx.clamp(min=0)]
    v = torch.where(idx < 0, torch.full_like(picked, at_minus_one), picked)
    return v.to(like.device).reshape(-1, *([1] * (like.ndim - 1)))


def _is_int(t: Timestep) -> bool:
    return not isinstance(t, torch.Tensor) or t.ndim == 0


def _sqrt_ab(schedule: Schedule, t: Timestep, like: torch.Tensor):
    """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)): two floats for an int t, else two (B, 1, 1, 1)
    tensors shaped to broadcast against ``like`` (B, C, H, W). alpha_bar_{-1} = 1."""
    if _is_int(t):
        ab = _ab(schedule, int(t))
        return ab**0.5, (1.0 - ab) ** 0.5
    return (
        _per_row(schedule.sqrt_alpha_bar, t, like, 1.0),
        _per_row(schedule.sqrt_one_minus_alpha_bar, t, like, 0.0),
    )


# ---------------------------------------------------------------------------------
# Reparametrisations: x_t = sqrt(ab) x0 + sqrt(1 - ab) eps   (Ho et al. eq. 4)
#
# Every function here takes t as an int or as a (B,) LongTensor (one index per image);
# tensors are (B, C, H, W) and the result is shaped like x_t.
# ---------------------------------------------------------------------------------


def predict_x0(schedule: Schedule, x_t: torch.Tensor, eps_hat: torch.Tensor, t: Timestep) -> torch.Tensor:
    """Remove *all* of the predicted noise: x0_hat = (x_t - sqrt(1 - ab_t) eps_hat) / sqrt(ab_t)  (eq. 15)."""
    sa, s1 = _sqrt_ab(schedule, t, x_t)
    return (x_t - s1 * eps_hat) / sa


def predict_eps(schedule: Schedule, x_t: torch.Tensor, x0_hat: torch.Tensor, t: Timestep) -> torch.Tensor:
    """The noise implied by an x0 estimate: eps = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)."""
    sa, s1 = _sqrt_ab(schedule, t, x_t)
    return (x_t - sa * x0_hat) / s1


def _kind(schedule: Schedule, prediction_type: str | None) -> str:
    kind = prediction_type or schedule.prediction_type
    if kind not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(f"unknown prediction_type {kind!r}")
    return kind


def output_to_eps(
    schedule: Schedule, output: torch.Tensor, x_t: torch.Tensor, t: Timestep, prediction_type: str | None = None
) -> torch.Tensor:
    """Turn a network output into eps_hat, whatever the network was trained to predict.

    * ``epsilon``: the output is eps_hat.
    * ``v_prediction`` (Salimans & Ho 2022): v = sqrt(ab) eps - sqrt(1 - ab) x0, so
      eps_hat = sqrt(ab) v + sqrt(1 - ab) x_t.
    * ``sample``: the output is x0_hat, so eps_hat = (x_t - sqrt(ab) x0_hat) / sqrt(1 - ab).
    """
    kind = _kind(schedule, prediction_type)
    if kind == "epsilon":
        return output
    if kind == "v_prediction":
        sa, s1 = _sqrt_ab(schedule, t, x_t)
        return sa * output + s1 * x_t
    return predict_eps(schedule, x_t, output, t)


def output_to_x0(
    schedule: Schedule, output: torch.Tensor, x_t: torch.Tensor, t: Timestep, prediction_type: str | None = None
) -> torch.Tensor:
    """x0_hat straight from a network output, as diffusers' ``DDPMScheduler.step`` computes it.

    * ``epsilon``: eq. 15, x0_hat = (x_t - sqrt(1 - ab) eps_hat) / sqrt(ab).
    * ``v_prediction``: x0_hat = sqrt(ab) x_t - sqrt(1 - ab) v (no division: exact even at t = T-1,
      where a round trip through eps_hat divides float32 rounding by sqrt(ab) ~ 1e-5).
    * ``sample``: the output is x0_hat.
    """
    kind = _kind(schedule, prediction_type)
    if kind == "epsilon":
        return predict_x0(schedule, x_t, output, t)
    if kind == "v_prediction":
        sa, s1 = _sqrt_ab(schedule, t, x_t)
        return sa * x_t - s1 * output
    return output


def eps_to_output(
    schedule: Schedule, eps: torch.Tensor, x_t: torch.Tensor, t: Timestep, prediction_type: str
) -> torch.Tensor:
    """The inverse of :func:`output_to_eps` (used to build test models)."""
    kind = _kind(schedule, prediction_type)
    if kind == "epsilon":
        return eps
    return training_target(schedule, predict_x0(schedule, x_t, eps, t), eps, t, kind)


def training_target(
    schedule: Schedule, x0: torch.Tensor, eps: torch.Tensor, t: Timestep, prediction_type: str | None = None
) -> torch.Tensor:
    """What a network of this ``prediction_type`` should output for x_t = q_sample(x0, t, noise=eps):
    eps, v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022), or x0. Shaped like ``x0``."""
    kind = _kind(schedule, prediction_type)
    if kind == "epsilon":
        return eps
    if kind == "v_prediction":
        sa, s1 = _sqrt_ab(schedule, t, x0)
        return sa * eps - s1 * x0
    return x0


# ---------------------------------------------------------------------------------
# The true posterior q(x_{t-1} | x_t, x_0)   (Ho et al. eqs. 6-7)
# ---------------------------------------------------------------------------------


def q_posterior(schedule: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: Timestep, t_prev: Timestep | None = None):
    """Mean and variance of q(x_{t_prev} | x_t, x_0).

    With the default ``t_prev = t - 1`` this is eq. 7:
    mu_tilde = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t,
    beta_tilde = (1 - ab_{t-1}) / (1 - ab_t) beta_t.
    For a strided step, alpha_t and beta_t are those of the jump t_prev -> t:
    alpha = ab_t / ab_{t_prev}, beta = 1 - alpha.

    :param x0, x_t: (B, C, H, W).
    :param t, t_prev: ints, or (B,) LongTensors (one index per image; -1 = the clean image).
    :returns: ``(mean, variance, log_variance_clipped)``; mean shaped like ``x_t``. For int
        t the variance and log variance are floats, for tensor t (B, 1, 1, 1) tensors in
        x_t's dtype. The variance is 0 when t_prev = -1; the log variance then uses the
        t = 1 value, as improved-diffusion does.
    """
    if _is_int(t) and (t_prev is None or _is_int(t_prev)):
        t = int(t)
        t_prev = t - 1 if t_prev is None else int(t_prev)
        ab_t, ab_prev = _ab(schedule, t), _ab(schedule, t_prev)
        alpha = ab_t / ab_prev
        beta = 1.0 - alpha
        coef_x0 = ab_prev**0.5 * beta / (1.0 - ab_t)
        coef_xt = alpha**0.5 * (1.0 - ab_prev) / (1.0 - ab_t)
        var = (1.0 - ab_prev) / (1.0 - ab_t) * beta
        if t_prev == t - 1:
            logvar = float(schedule.posterior_log_variance_clipped[t])
        else:
            logvar = math.log(max(var, 1e-20))
        return coef_x0 * x0 + coef_xt * x_t, var, logvar
    t = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(x_t.shape[0])
    if t_prev is None:  # eq. 7 from the schedule's own arrays (improved-diffusion's q_posterior_mean_variance)
        c1, c2, var, logvar = (
            _per_row(v, t, x_t, 0.0)
            for v in (
                schedule.posterior_mean_coef1,
                schedule.posterior_mean_coef2,
                schedule.posterior_variance,
                schedule.posterior_log_variance_clipped,
            )
        )
        return c1 * x0 + c2 * x_t, var, logvar
    t_prev = torch.as_tensor(t_prev, dtype=torch.long).reshape(-1).expand(x_t.shape[0])
    f64 = torch.zeros((), dtype=torch.float64).expand(x_t.shape)  # gather the alpha_bars in float64
    ab_t = _per_row(schedule.alpha_bar, t, f64, 1.0)
    ab_prev = _per_row(schedule.alpha_bar, t_prev, f64, 1.0)
    alpha = ab_t / ab_prev
    beta = 1.0 - alpha
    coef_x0 = (ab_prev.sqrt() * beta / (1.0 - ab_t)).to(x_t.dtype)
    coef_xt = (alpha.sqrt() * (1.0 - ab_prev) / (1.0 - ab_t)).to(x_t.dtype)
    var = (1.0 - ab_prev) / (1.0 - ab_t) * beta
    default = (t_prev == t - 1).reshape(var.shape)
    logvar = torch.where(
        default, _per_row(schedule.posterior_log_variance_clipped, t, var, 0.0), var.clamp(min=1e-20).log()
    )
    return coef_x0 * x0 + coef_xt * x_t, var.to(x_t.dtype), logvar.to(x_t.dtype)


# ---------------------------------------------------------------------------------
# One reverse step
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepOutput:
    """``prev_sample``: x_{t_prev}, shaped like x_t. ``x0_hat``: the x_0 estimate used (clipped if configured)."""

    prev_sample: torch.Tensor
    x0_hat: torch.Tensor


def _maybe_clip(schedule: Schedule, x0_hat: torch.Tensor, clip: bool | None) -> torch.Tensor:
    clip = schedule.clip_sample if clip is None else clip
    r = schedule.clip_sample_range
    return x0_hat.clamp(-r, r) if clip else x0_hat


def step_x0_hat(
    schedule: Schedule, x_t: torch.Tensor, eps_hat: torch.Tensor, t: int, x0_hat: torch.Tensor | None
) -> torch.Tensor:
    """The x0_hat a step uses: the given one, or eq. 15 from eps_hat for an eps-predicting schedule.

    A v- or sample-predicting network's own output gives x0_hat directly (:func:`output_to_x0`, as diffusers'
    schedulers compute it); rebuilding it from eps_hat divides float32 rounding by sqrt(alpha_bar_t), which on the
    cosine schedule at t = T-1 (alpha_bar ~ 2.4e-9) puts x0_hat off by ~6e-4. So for those schedules ``x0_hat`` is
    required and its absence raises ``ValueError`` (pass ``LoadedModel.predict``'s pair).
    """
    if x0_hat is not None:
        return x0_hat
    if schedule.prediction_type != "epsilon":
        raise ValueError(
            f"this schedule's network predicts {schedule.prediction_type!r}: pass x0_hat from its own output "
            "(LoadedModel.predict, or output_to_x0); rebuilding it from eps_hat loses precision at high t"
        )
    return predict_x0(schedule, x_t, eps_hat, t)


def ddpm_step(
    schedule: Schedule,
    eps_hat: torch.Tensor,
    t: int,
    x_t: torch.Tensor,
    generator: torch.Generator | None = None,
    t_prev: int | None = None,
    clip: bool | None = None,
    x0_hat: torch.Tensor | None = None,
) -> StepOutput:
    """Ancestral DDPM step: sample x_{t_prev} ~ p_theta(x_{t_prev} | x_t) = N(mu_theta, sigma^2 I).

    1. x0_hat: the given ``x0_hat`` (:func:`output_to_x0`: straight from the network output), or eq. 15
       from eps_hat for an eps-predicting schedule (:func:`step_x0_hat`; a v- or sample-predicting
       schedule without ``x0_hat`` raises ``ValueError``), clipped to [-1, 1] if the schedule says so.
    2. mu_theta = the posterior mean of eq. 7 with x0_hat in place of x0.
    3. sigma^2 = beta_tilde (``fixed_small``) or beta = 1 - ab_t / ab_{t_prev} (``fixed_large``), with
       noise z drawn from ``generator`` exactly as diffusers' ``DDPMScheduler.step`` draws it; no noise is
       added, and none drawn, on the step to the clean image (t_prev = -1), as in Ho et al.'s Algorithm 2
       (z = 0 on the last step) and improved-diffusion's ``p_sample`` (no noise where the respaced t is 0).

    Where this differs from diffusers: diffusers decides by ``t > 0``, not by the step's target. With
    timesteps that end at 0 (the project's :func:`~model.diffusion.trajectory.make_timesteps`, diffusers'
    ``leading`` and ``linspace`` spacings) the two agree sample for sample on every step. A run that ends
    above 0 (``trailing`` spacing: the last step goes from t = T // n - 1 straight to the clean image) differs
    on that last step only: diffusers draws z there and adds sigma z, where sigma^2 is 1 - ab_t for
    ``fixed_large`` (the final sample keeps sqrt(1 - ab_t) z of noise) and beta_tilde = 0, clamped to 1e-20,
    for ``fixed_small`` (1e-10 z: the same sample to float32 rounding); this step adds nothing.
    """
    t_prev = t - 1 if t_prev is None else t_prev
    x0_hat = step_x0_hat(schedule, x_t, eps_hat, t, x0_hat)
    x0_hat = _maybe_clip(schedule, x0_hat, clip)
    mean, var, _ = q_posterior(schedule, x0_hat, x_t, t, t_prev)
    if t_prev >= 0:  # no noise on the step to the clean image
        noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
        if schedule.variance_type == "fixed_large":
            var = 1.0 - _ab(schedule, t) / _ab(schedule, t_prev)
        elif schedule.variance_type not in ("fixed_small", "fixed_small_log"):  # learned variances are refused too
            raise ValueError(f"unsupported variance_type {schedule.variance_type!r}")
        mean = mean + max(var, 1e-20) ** 0.5 * noise
    return StepOutput(prev_sample=mean, x0_hat=x0_hat)


def ddim_step(
    schedule: Schedule,
    eps_hat: torch.Tensor,
    t: int,
    x_t: torch.Tensor,
    t_prev: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip: bool | None = None,
    x0_hat: torch.Tensor | None = None,
) -> StepOutput:
    """DDIM step (Song et al. 2021, eq. 12): deterministic for eta = 0, DDPM-like for eta = 1.

        x_{t_prev} = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps_hat + sigma z
        sigma = eta * sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))      (eq. 16)

    ``t_prev = -1`` means the final step to the clean image: alpha_bar = 1, or alpha_bar_0
    when the schedule has ``set_alpha_to_one=False`` (diffusers' ``DDIMScheduler``).
    ``x0_hat``: as in :func:`ddpm_step` (required for a v- or sample-predicting schedule; eq. 15 from
    eps_hat otherwise, see :func:`step_x0_hat`).
    """
    ab_t = _ab(schedule, t)
    ab_prev = _ab(schedule, t_prev) if t_prev >= 0 or schedule.set_alpha_to_one else schedule.alpha_bar_floats[0]
    x0_hat = step_x0_hat(schedule, x_t, eps_hat, t, x0_hat)
    x0_hat = _maybe_clip(schedule, x0_hat, clip)
    sigma = eta * ((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev)) ** 0.5
    direction = max(1.0 - ab_prev - sigma**2, 0.0) ** 0.5 * eps_hat
    prev = ab_prev**0.5 * x0_hat + direction
    if eta > 0:
        prev = prev + sigma * torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
    return StepOutput(prev_sample=prev, x0_hat=x0_hat)
