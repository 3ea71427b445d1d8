"""The training objective made concrete: the variational bound in bits/dim, the simple loss,
their per-t weights, and one real training step.

Follows openai/improved-diffusion's ``GaussianDiffusion.calc_bpd_loop`` with
``clip_denoised=True`` so the numbers compare with published bits/dim.

The chain (Ho et al. 2020, eqs. 1-5). With p(x_{0:T}) = p(x_T) prod_t p_theta(x_{t-1} | x_t),

    -log p_theta(x_0) <= E_q[ L_T + sum_{t>1} L_{t-1} + L_0 ]                     (eq. 5)
    L_T     = KL(q(x_T | x_0) || N(0, I))                        the prior term
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))  Gaussians, closed form
    L_0     = -log p_theta(x_0 | x_1)                            discretised Gaussian decoder (eq. 13)

Timestep convention (see :mod:`model.diffusion.schedule`): the index ``t`` runs 0 .. T-1 and index 0
is the first noising step, i.e. index t is Ho's step t + 1. So the term computed at index
t is Ho's ``L_t``: index 0 gives the decoder L_0 (x_t at index 0 is Ho's x_1), index t >= 1
gives the KL from x at index t to index t - 1, and the prior uses index T - 1.

Units: every term is the mean over the C*H*W dimensions of one image, divided by ln 2,
i.e. bits per dimension. Model variance (the network outputs 3 channels, so it is fixed)
comes from the schedule's ``variance_type``, exactly as improved-diffusion's
``p_mean_variance``:

* ``fixed_small``: sigma_t^2 = beta_tilde_t, log taken from ``posterior_log_variance_clipped``
  (the t = 0 value replaced by the t = 1 value);
* ``fixed_large``: sigma_t^2 = beta_t, with the first entry replaced by beta_tilde at t = 1.

Images are quantised to 8 bits first (256 levels k / 127.5 - 1). All math is float64
after the network call; the network sees float32. Randomness always comes from an
explicit ``torch.Generator``: the same generator state gives the same numbers, whatever
the batch size. Nothing here mutates a model.

Run ``python -m model.likelihood IMAGE`` for the command line (:mod:`model.cli.likelihood`).

Where the parts live: the Gaussian building blocks, the model's variance, the per-t
weights and the terms of the bound (:func:`vb_terms`) are :mod:`model.diffusion.vlb_terms`; this
module adds the sampled estimate, the simple loss, one training step and the codec
reference points; the command line is :mod:`model.cli.likelihood` (it imports this module,
never the reverse). Every name of :mod:`model.diffusion.vlb_terms` is re-exported here.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.diffusion.forward import q_sample
from model.diffusion.reverse import training_target
from model.diffusion.schedule import Schedule
from model.diffusion.vlb_terms import (
    DEFAULT_BATCH_SIZE,
    EpsModel,
    Progress,
    TermsResult,
    _as_timesteps,
    _check_image,
    _draws,
    _network_batches,
    loss_weights,
    mean_flat,
    quantize_8bit,
    vb_terms,
)

# ---------------------------------------------------------------------------------
# The unbiased estimate from N sampled timesteps
# ---------------------------------------------------------------------------------


PROPOSALS = ("uniform", "importance")


@dataclass(frozen=True)
class BPDEstimate:
    """An unbiased estimate of the bound (bits/dim) from a few sampled timesteps.

    ``total_bpd`` = ``decoder_bpd`` + mean_i(L_{t_i} / p(t_i)) + ``prior_bpd``, with t_i ~ p on
    1..T-1; for the uniform p = 1 / (T - 1) the middle part is (T - 1) * mean(sampled terms).
    ``stderr``: std_i(L_{t_i} / p(t_i)) / sqrt(N), the standard error (falls like 1/sqrt(N)).
    ``terms``: the :class:`TermsResult` of the sampled indices followed by index 0.
    """

    total_bpd: float
    stderr: float
    n: int
    decoder_bpd: float
    prior_bpd: float
    proposal: str
    terms: TermsResult


def proposal_probs(schedule: Schedule, proposal: str = "uniform") -> torch.Tensor:
    """p(t) for t = 1..T-1 ((T-1,) float64, sums to 1) used by :func:`estimate_bpd`.

    ``uniform``: 1 / (T - 1). ``importance``: 0.9 * lambda_t / sum(lambda) + 0.1 / (T - 1), with
    lambda_t the VLB weight of :func:`loss_weights`. For a network whose eps-MSE is
    about flat in t the terms are about proportional to lambda_t, so L_t / p(t) is nearly
    constant and the estimate has a far smaller error; the uniform part keeps it unbiased
    and bounded when that guess is wrong.
    """
    T = schedule.T
    uniform = torch.full((T - 1,), 1.0 / (T - 1), dtype=torch.float64)
    if proposal == "uniform":
        return uniform
    if proposal == "importance":
        lam = loss_weights(schedule).vlb[1:]
        return 0.9 * lam / lam.sum() + 0.1 * uniform
    raise ValueError(f"unknown proposal {proposal!r}; choose one of {', '.join(PROPOSALS)}")


def estimate_bpd(
    eps_model: EpsModel,
    schedule: Schedule,
    x0: torch.Tensor,
    n: int,
    generator: torch.Generator | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    clip_denoised: bool = True,
    progress: Progress | None = None,
    proposal: str = "uniform",
    decoder_generator: torch.Generator | None = None,
) -> BPDEstimate:
    """Estimate the bound from ``n`` timesteps drawn (with replacement) from 1..T-1.

    Since sum_{t=1}^{T-1} L_t = E_{t ~ p}[L_t / p(t)], the sample mean of L_t / p(t) is
    unbiased for any p > 0; with the uniform p it is (T - 1) times the mean of the sampled
    terms (Nichol & Dhariwal 2021, sec. 3.3, sample the L_vlb terms uniformly, or by
    importance). The decoder L_0 is always computed exactly: it is often as large as all
    the KL terms together, and leaving it to chance would make the error huge. The
    standard error falls like 1/sqrt(N). The small-t KL terms are much larger than the
    rest (about 1/t), so the uniform estimate is noisy for small N; ``"importance"``
    (see :func:`proposal_probs`) is usually tens of times more precise.

    :param n: number of sampled KL terms, >= 2 (for the standard error).
    :param decoder_generator: if given, the source of L_0's own noise draw (see :func:`vb_terms`), so that L_0
        equals the one of ``vb_terms`` over all timesteps with the same ``decoder_generator`` seed.
    :returns: a :class:`BPDEstimate`. The generator draws the timesteps, then the noise.
    """
    T = schedule.T
    if T < 2:
        res = vb_terms(eps_model, schedule, x0, [0], generator, batch_size, clip_denoised, progress, decoder_generator)
        return BPDEstimate(res.total_bpd, 0.0, 0, float(res.terms_bpd[0]), res.prior_bpd, proposal, res)
    n = max(2, int(n))
    p = proposal_probs(schedule, proposal)
    idx = torch.multinomial(p, n, replacement=True, generator=generator)
    sampled = (idx + 1).sort(descending=True).values
    ts = sampled.tolist() + [0]
    res = vb_terms(eps_model, schedule, x0, ts, generator, batch_size, clip_denoised, progress, decoder_generator)
    ratios = res.terms_bpd[:-1] / p[sampled - 1]
    decoder = float(res.terms_bpd[-1])
    stderr = float(ratios.std(unbiased=True)) / math.sqrt(n)
    total = decoder + float(ratios.mean()) + res.prior_bpd
    return BPDEstimate(total, stderr, n, decoder, res.prior_bpd, proposal, res)


# ---------------------------------------------------------------------------------
# The simple loss per t
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimpleLossResult:
    """eps-MSE per timestep for one image: ``timesteps`` (K,), ``mean`` and ``std`` (K,) over
    draws, ``values`` (n_draws, K) float64: mean over dims of (eps - eps_theta(x_t, t))^2."""

    timesteps: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    values: torch.Tensor


def simple_loss_per_t(
    eps_model: EpsModel,
    schedule: Schedule,
    x0: torch.Tensor,
    timesteps: Sequence[int] | torch.Tensor,
    n_draws: int = 4,
    generator: torch.Generator | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> SimpleLossResult:
    """L_simple at each t: ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2 / dim (Ho et al. eq. 14).

    :param x0: (1, C, H, W) in [-1, 1] (quantised to 8 bits, as for the bound).
    :param timesteps: K indices in 0..T-1.
    :param n_draws: eps draws per timestep (>= 1); the spread is their std (0 for one draw).
    :returns: :class:`SimpleLossResult`. Expected value about 1 for a network that outputs
        0, and near 0 for a perfect denoiser; typically largest at small t.
    """
    _check_image(x0)
    x0q = quantize_8bit(x0.to(torch.float64))
    ts = _as_timesteps(schedule, timesteps)
    n_draws = max(1, int(n_draws))
    flat = [t for _ in range(n_draws) for t in ts]  # draw-major: draw d covers every t
    noise = _draws(x0, len(flat), generator)
    out = torch.empty(len(flat), dtype=torch.float64)
    for sl, _, _, eps, eps_hat in _network_batches(eps_model, x0q, flat, noise, schedule, batch_size, progress):
        out[sl] = mean_flat((eps_hat.double() - eps.double()) ** 2)
    values = out.reshape(n_draws, len(ts))
    std = values.std(dim=0, unbiased=True) if n_draws > 1 else torch.zeros(len(ts), dtype=torch.float64)
    return SimpleLossResult(torch.tensor(ts, dtype=torch.long), values.mean(dim=0), std, values)


# ---------------------------------------------------------------------------------
# The reparametrisation trick: one real training step on a copy
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainStepResult:
    """One optimiser step on a private copy of the network.

    ``loss_before`` / ``loss_after``: MSE of the network output against its target on the
    same batch (same t and eps), before and after the step. ``timesteps``: (B,) the t
    used. ``grad_norm``: global L2 norm of the gradient. ``target``: what the output was
    compared with (eps, v or x_0, following the schedule's ``prediction_type``).
    """

    loss_before: float
    loss_after: float
    timesteps: torch.Tensor
    grad_norm: float
    lr: float
    optimizer: str
    target: str


def train_step(
    unet: torch.nn.Module,
    schedule: Schedule,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    batch_size: int = 8,
    lr: float = 1e-4,
    optimizer: str = "adam",
) -> TrainStepResult:
    """One gradient step of L_simple on ``x0`` with a deep copy of ``unet``; ``unet`` is never touched.

    The reparametrisation trick: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
    (eq. 4) is a differentiable function of the parameters' input, with the randomness in
    eps ~ N(0, I) and t ~ U{0..T-1} drawn outside, so d loss / d theta is an ordinary
    gradient (Ho et al. Algorithm 1).

    :param unet: a ``UNet2DModel`` (or any ``(x, t) -> output`` module), e.g. ``LoadedModel.unet``.
    :param x0: (1, C, H, W) in [-1, 1]; repeated ``batch_size`` times, each with its own t and eps.
    :param optimizer: ``"adam"`` (torch.optim.Adam) or ``"sgd"``.
    :returns: :class:`TrainStepResult`. For a small ``lr``, ``loss_after < loss_before``.
    """
    _check_image(x0)
    x0q = quantize_8bit(x0.float())
    net = copy.deepcopy(unet)
    net.requires_grad_(True)
    net.eval()
    t = torch.randint(0, schedule.T, (batch_size,), generator=generator)
    eps = _draws(x0, batch_size, generator)
    xb = x0q.expand(batch_size, -1, -1, -1)
    x_t, _ = q_sample(schedule, xb, t, noise=eps)  # differentiable in theta's input, eps fixed
    target = training_target(schedule, xb, eps, t)
    dev = next(net.parameters()).device
    x_t, t_dev, target = x_t.to(dev), t.to(dev), target.to(dev)

    def loss_fn() -> torch.Tensor:
        out = net(x_t, t_dev)
        out = out.sample if hasattr(out, "sample") else out
        return torch.mean((out[:, : target.shape[1]].float() - target) ** 2)

    params = [p for p in net.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose adam or sgd")
    # Eval mode throughout (no dropout), so before and after differ only by the step.
    with torch.no_grad():
        loss_before = float(loss_fn())
    with torch.enable_grad():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        grad_norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params if p.grad is not None))
        opt.step()
    with torch.no_grad():
        loss_after = float(loss_fn())
    return TrainStepResult(loss_before, loss_after, t, grad_norm, lr, optimizer, schedule.prediction_type)


# ---------------------------------------------------------------------------------
# Reference points: what a PNG or a JPEG of the same picture costs
# ---------------------------------------------------------------------------------


def codec_bpd(x0: torch.Tensor, jpeg_quality: int = 90) -> dict[str, float]:
    """Bits/dim of the PNG and JPEG encodings of the same 8-bit picture: bytes * 8 / (C H W).

    :param x0: (1, C, H, W) or (C, H, W) in [-1, 1] at the working resolution, C = 3 or 1 (grey).
    :returns: ``{"png": ..., "jpeg": ...}``. PNG is lossless (a true code length for these
        pixels, headers included); JPEG (quality 90, 4:2:0) is lossy, so it is only a rough
        reference. Both include a few hundred bytes of headers, which matter at 64 px.
    """
    from PIL import Image

    x = x0.detach().float().cpu()
    if x.ndim == 4:
        x = x[0]
    arr = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    grey = arr.shape[2] == 1
    img = Image.fromarray(np.ascontiguousarray(arr[..., 0] if grey else arr), mode="L" if grey else "RGB")
    dims = arr.shape[2] * arr.shape[0] * arr.shape[1]
    out = {}
    for name, kwargs in (
        ("png", {"format": "PNG", "optimize": True}),
        ("jpeg", {"format": "JPEG", "quality": jpeg_quality}),
    ):
        buf = io.BytesIO()
        img.save(buf, **kwargs)
        out[name] = len(buf.getvalue()) * 8 / dims
    return out
