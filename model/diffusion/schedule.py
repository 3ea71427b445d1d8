"""Noise schedules for DDPM-style diffusion, built in float64.

Timestep convention (used everywhere in this project, as in diffusers and
openai/improved-diffusion): the timestep *index* ``t`` runs over ``0 .. T-1``.
Index ``t = 0`` is the first noising step, so ``x_t`` with ``t = 0`` is already a
tiny bit noisy (``sqrt(1 - alpha_bar_0) = 0.01`` for the linear schedule) and the
clean image is called ``x0`` / ``x_0``. Index ``t`` is step ``t + 1`` of Ho et al.

    beta_t        noise added by step t                  q(x_t | x_{t-1}) = N(sqrt(1-beta_t) x_{t-1}, beta_t I)
    alpha_t       1 - beta_t
    alpha_bar_t   prod_{s<=t} alpha_s                     q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1-alpha_bar_t) I)   (Ho et al. eq. 4)
    snr_t         alpha_bar_t / (1 - alpha_bar_t)
    posterior_variance_t  beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t                       (Ho et al. eq. 7)

All arrays are 1-D ``torch.float64`` tensors of length ``T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

SCHEDULE_NAMES = ("linear", "cosine")

# Names that diffusers uses in scheduler_config.json for our schedules.
_DIFFUSERS_NAME = {"linear": "linear", "cosine": "squaredcos_cap_v2", "scaled_linear": "scaled_linear"}
_FROM_DIFFUSERS = {v: k for k, v in _DIFFUSERS_NAME.items()}


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. (2020): beta rises linearly from 1e-4 to 0.02 over T = 1000 steps."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def scaled_linear_betas(T: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """Linear in sqrt(beta) (used by some latent-diffusion checkpoints)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021) eq. 17: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) * pi/2), betas capped at 0.999."""

    def f(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


@dataclass(frozen=True)
class Schedule:
    """A noise schedule plus the sampling conventions that travel with a checkpoint.

    Attributes are float64 tensors of shape (T,). Build one with :func:`make_schedule`
    or :func:`schedule_from_config`; the object is immutable and safe to share between
    sessions and threads.
    """

    name: str
    betas: torch.Tensor
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "epsilon"  # what the network outputs: epsilon | v_prediction | sample
    variance_type: str = "fixed_small"  # DDPM reverse variance: fixed_small (beta_tilde) | fixed_large (beta)
    clip_sample: bool = True  # clip x0_hat to [-clip_sample_range, clip_sample_range] when sampling
    clip_sample_range: float = 1.0
    set_alpha_to_one: bool = True  # DDIM: alpha_bar of the clean image is 1 (True) or alpha_bar_0 (False)
    alphas: torch.Tensor = field(init=False)
    alpha_bar: torch.Tensor = field(init=False)
    alpha_bar_prev: torch.Tensor = field(init=False)
    sqrt_alpha_bar: torch.Tensor = field(init=False)
    sqrt_one_minus_alpha_bar: torch.Tensor = field(init=False)
    snr: torch.Tensor = field(init=False)
    posterior_variance: torch.Tensor = field(init=False)
    posterior_log_variance_clipped: torch.Tensor = field(init=False)
    posterior_mean_coef1: torch.Tensor = field(init=False)
    posterior_mean_coef2: torch.Tensor = field(init=False)
    alpha_bar_floats: tuple[float, ...] = field(init=False, repr=False)  # alpha_bar as Python floats

    def __post_init__(self) -> None:
        b = self.betas.to(torch.float64)
        if b.ndim != 1 or len(b) < 1:
            raise ValueError("betas must be a non-empty 1-D tensor")
        if not bool(((b > 0) & (b < 1)).all()):
            raise ValueError("every beta must lie in (0, 1)")
        a = 1.0 - b
        ab = torch.cumprod(a, dim=0)
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        post_var = b * (1.0 - ab_prev) / (1.0 - ab)  # beta_tilde_t, eq. 7; 0 at t = 0
        # log of beta_tilde with the t = 0 value replaced by the t = 1 value (improved-diffusion).
        post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]])) if len(b) > 1 else torch.log(b)
        put = object.__setattr__
        put(self, "betas", b)
        put(self, "alphas", a)
        put(self, "alpha_bar", ab)
        # the samplers read one alpha_bar per call: a float from a tuple, not a tensor index + .item()
        put(self, "alpha_bar_floats", tuple(ab.tolist()))
        put(self, "alpha_bar_prev", ab_prev)
        put(self, "sqrt_alpha_bar", ab.sqrt())
        put(self, "sqrt_one_minus_alpha_bar", (1.0 - ab).sqrt())
        put(self, "snr", ab / (1.0 - ab))
        put(self, "posterior_variance", post_var)
        put(self, "posterior_log_variance_clipped", post_logvar)
        put(self, "posterior_mean_coef1", b * ab_prev.sqrt() / (1.0 - ab))  # eq. 7, weight on x0
        put(self, "posterior_mean_coef2", (1.0 - ab_prev) * a.sqrt() / (1.0 - ab))  # eq. 7, weight on x_t

    @property
    def T(self) -> int:
        """Number of diffusion steps; valid timestep indices are 0 .. T-1."""
        return len(self.betas)

    def to_scheduler_config(self) -> dict:
        """A diffusers ``DDPMScheduler`` config dict that rebuilds this schedule."""
        cfg = {
            "_class_name": "DDPMScheduler",
            "num_train_timesteps": self.T,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": _DIFFUSERS_NAME.get(self.name, "linear"),
            "trained_betas": None,
            "prediction_type": self.prediction_type,
            "variance_type": self.variance_type,
            "clip_sample": self.clip_sample,
            "clip_sample_range": self.clip_sample_range,
        }
        if not self.set_alpha_to_one:  # a DDIMScheduler key; DDPMScheduler ignores it
            cfg["set_alpha_to_one"] = False
        if self.name not in _DIFFUSERS_NAME:
            cfg["beta_schedule"] = "linear"
            cfg["trained_betas"] = self.betas.tolist()
        return cfg


def make_schedule(name: str = "linear", T: int = 1000, **conventions) -> Schedule:
    """Build a named schedule: ``"linear"`` (Ho et al.), ``"cosine"`` (Nichol & Dhariwal) or ``"scaled_linear"``.

    ``conventions`` may set ``prediction_type``, ``variance_type``, ``clip_sample``,
    ``clip_sample_range``, ``set_alpha_to_one``, ``beta_start`` and ``beta_end``.
    """
    beta_start = conventions.pop("beta_start", None)
    beta_end = conventions.pop("beta_end", None)
    if name == "linear":
        beta_start = 1e-4 if beta_start is None else beta_start
        beta_end = 0.02 if beta_end is None else beta_end
        betas = linear_betas(T, beta_start, beta_end)
    elif name == "scaled_linear":
        beta_start = 0.00085 if beta_start is None else beta_start
        beta_end = 0.012 if beta_end is None else beta_end
        betas = scaled_linear_betas(T, beta_start, beta_end)
    elif name == "cosine":
        beta_start, beta_end = 1e-4, 0.02  # unused by the cosine formula; kept for the config
        betas = cosine_betas(T)
    else:
        raise ValueError(f"unknown schedule {name!r}; choose one of linear, cosine, scaled_linear")
    return Schedule(name=name, betas=betas, beta_start=beta_start, beta_end=beta_end, **conventions)


def schedule_from_config(config: dict) -> Schedule:
    """Build a :class:`Schedule` from a diffusers scheduler config (``scheduler_config.json``).

    Understands ``num_train_timesteps``, ``beta_start``, ``beta_end``, ``beta_schedule``
    (linear | scaled_linear | squaredcos_cap_v2), ``trained_betas``, ``prediction_type``,
    ``variance_type``, ``clip_sample``, ``clip_sample_range`` and DDIM's ``set_alpha_to_one``.
    Missing keys take diffusers' ``DDPMScheduler`` defaults.

    Keys that would change the math but are not implemented are refused with a
    ``ValueError`` naming the key (``load_local`` turns it into a ``ModelLoadError``):
    ``rescale_betas_zero_snr: true`` (alpha_bar_{T-1} = 0, where eq. 15 divides by zero),
    ``thresholding: true`` (dynamic thresholding of x0_hat), a learned variance
    (``variance_type`` learned / learned_range: the extra output channels are not used here)
    and ``timestep_spacing: trailing``. The inference timesteps are this project's own
    (:func:`model.diffusion.trajectory.make_timesteps`: evenly spaced down to 0), so the other
    ``timestep_spacing`` values, an inference-time choice, are accepted.
    """
    T = int(config.get("num_train_timesteps", 1000))
    conventions = {
        "prediction_type": config.get("prediction_type", "epsilon") or "epsilon",
        "variance_type": config.get("variance_type", "fixed_small") or "fixed_small",
        "clip_sample": bool(config.get("clip_sample", True)),
        "clip_sample_range": float(config.get("clip_sample_range", 1.0) or 1.0),
        "set_alpha_to_one": bool(config.get("set_alpha_to_one", True)),
    }
    if conventions["prediction_type"] not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(f"unsupported prediction_type {conventions['prediction_type']!r}")
    _refuse_unsupported(config, conventions["variance_type"])
    trained = config.get("trained_betas")
    if trained is not None:
        return Schedule(name="trained", betas=torch.tensor(trained, dtype=torch.float64), **conventions)
    kind = config.get("beta_schedule", "linear")
    if kind not in _FROM_DIFFUSERS:
        raise ValueError(f"unsupported beta_schedule {kind!r}")
    name = _FROM_DIFFUSERS[kind]
    kw = {}
    if name != "cosine":
        kw = {"beta_start": float(config.get("beta_start", 1e-4)), "beta_end": float(config.get("beta_end", 0.02))}
    return make_schedule(name, T, **kw, **conventions)


def _refuse_unsupported(config: dict, variance_type: str) -> None:
    """Raise a ValueError naming the first scheduler-config key whose value this project does not implement."""
    if config.get("rescale_betas_zero_snr"):
        raise ValueError(
            "rescale_betas_zero_snr is set (zero terminal SNR), which Diffusion Lens does not implement; "
            "pick a model trained without it"
        )
    if config.get("thresholding"):
        raise ValueError(
            "thresholding is set (dynamic thresholding of x0_hat), which Diffusion Lens does not implement; "
            "pick a model without it, or set thresholding to false in its scheduler_config.json"
        )
    if variance_type in ("learned", "learned_range"):
        raise ValueError(
            f"variance_type is {variance_type!r} (a variance predicted by extra output channels), which "
            "Diffusion Lens does not implement; pick a model with a fixed variance"
        )
    if config.get("timestep_spacing") == "trailing":
        raise ValueError(
            "timestep_spacing is 'trailing', which Diffusion Lens does not implement (its timesteps are evenly "
            "spaced down to 0); pick a model without it"
        )


def gather(values: torch.Tensor, t: torch.Tensor | int, ndim: int = 4, dtype=torch.float32) -> torch.Tensor:
    """Pick ``values[t]`` per batch element and shape it to broadcast against a (B, C, H, W) tensor.

    ``t`` is an int or a LongTensor of shape (B,); the result has shape (B, 1, 1, 1)
    (or (1, 1, 1, 1) for an int) in ``dtype``.
    """
    idx = torch.as_tensor(t, dtype=torch.long).reshape(-1)
    out = values.to(device=idx.device, dtype=dtype)[idx]  # on t's device: a GPU batch never waits for the host
    return out.reshape(-1, *([1] * (ndim - 1)))


def alpha_bar_at(schedule: Schedule, t) -> torch.Tensor:
    """alpha_bar at timestep ``t``: an int, a float, or a tensor/array of them (any shape), each in [0, T-1].

    :returns: float64 tensor of ``t``'s shape. At an integer t it is the schedule's own ``alpha_bar[t]``; between
        indices sigma = sqrt((1 - alpha_bar) / alpha_bar) is interpolated linearly, as diffusers'
        ``EulerDiscreteScheduler`` does, so an exact model and that scheduler agree on what a float t means.
    :raises ValueError: for a t outside [0, T-1].
    """
    tt = torch.as_tensor(np.asarray(t, dtype=np.float64))
    if bool(((tt < 0) | (tt > schedule.T - 1) | tt.isnan()).any()):
        raise ValueError(f"timestep must lie in 0..{schedule.T - 1}, got {t}")
    sigmas = ((1 - schedule.alpha_bar) / schedule.alpha_bar).sqrt().numpy()
    sigma = torch.as_tensor(np.interp(tt.numpy(), np.arange(schedule.T), sigmas), dtype=torch.float64)
    between = 1.0 / (1.0 + sigma**2)
    at_index = schedule.alpha_bar[tt.round().long()]
    return torch.where(tt == tt.round(), at_index, between)
