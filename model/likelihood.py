"""The training objective made concrete: the variational bound in bits/dim, the simple loss,
their per-t weights, and one real training step.

Follows openai/improved-diffusion's ``GaussianDiffusion.calc_bpd_loop`` with
``clip_denoised=True`` so the numbers compare with published bits/dim.

The chain (Ho et al. 2020, eqs. 1-5). With p(x_{0:T}) = p(x_T) prod_t p_theta(x_{t-1} | x_t),

    -log p_theta(x_0) <= E_q[ L_T + sum_{t>1} L_{t-1} + L_0 ]                     (eq. 5)
    L_T     = KL(q(x_T | x_0) || N(0, I))                        the prior term
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))  Gaussians, closed form
    L_0     = -log p_theta(x_0 | x_1)                            discretised Gaussian decoder (eq. 13)

Timestep convention (see :mod:`model.schedule`): the index ``t`` runs 0 .. T-1 and index 0
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

Run ``python -m model.likelihood IMAGE`` for the command line (see :func:`main`).
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.forward import q_sample
from model.schedule import Schedule, gather

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]  # (done, total) -> None
LN2 = math.log(2.0)
DEFAULT_BATCH_SIZE = 50  # timesteps per network call at 64 px (see bench/likelihood.py)


def default_batch_size(resolution: int) -> int:
    """Timesteps per network call: 50 at 64 px, scaled by pixel count (3 at 256 px, capped at 100)."""
    return int(min(100, max(1, round(DEFAULT_BATCH_SIZE * (64 / resolution) ** 2))))


# ---------------------------------------------------------------------------------
# Gaussian building blocks (improved-diffusion losses.py)
# ---------------------------------------------------------------------------------


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) elementwise, in nats.

        KL = 1/2 (-1 + logvar2 - logvar1 + exp(logvar1 - logvar2) + (mean1 - mean2)^2 exp(-logvar2))

    Arguments broadcast (tensors or floats); the result has the broadcast shape. It is 0
    for identical Gaussians and >= 0 always. Summed over dimensions it is the KL of the
    diagonal Gaussians.
    """
    tensor = next(a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, torch.Tensor))
    logvar1, logvar2 = (torch.as_tensor(v, dtype=tensor.dtype) for v in (logvar1, logvar2))
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Fast approximation of Phi(x), the standard normal CDF (tanh form, as improved-diffusion)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log p(x) of 8-bit pixels under a Gaussian integrated over 256 bins (Ho et al. 2020, eq. 13).

    :param x: pixels on the 256-level grid k / 127.5 - 1 in [-1, 1], any shape.
    :param means: Gaussian means, broadcastable to ``x``.
    :param log_scales: log standard deviations, broadcastable to ``x``.
    :returns: log-probabilities in nats, shaped like ``x``. Bin k covers
        [x - 1/255, x + 1/255]; the first bin extends to -inf and the last to +inf, so
        the 256 probabilities sum to 1.
    """
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


def quantize_8bit(x0: torch.Tensor) -> torch.Tensor:
    """Round images in [-1, 1] to the 256-level grid k / 127.5 - 1 (k = 0..255). Same shape."""
    return torch.round((x0.clamp(-1, 1) + 1.0) * 127.5) / 127.5 - 1.0


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the mean over every non-batch dimension."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


# ---------------------------------------------------------------------------------
# The model's variance and the VLB vs simple-loss weights
# ---------------------------------------------------------------------------------


def model_log_variance(schedule: Schedule) -> torch.Tensor:
    """log sigma_t^2 of p_theta(x_{t-1} | x_t) for every index t: (T,) float64.

    ``fixed_small`` / ``fixed_small_log``: ``posterior_log_variance_clipped`` (log beta_tilde,
    t = 0 replaced by t = 1). ``fixed_large``: log of [beta_tilde_1, beta_1, ..., beta_{T-1}]
    (improved-diffusion's ``ModelVarType.FIXED_LARGE``). Learned variances need a
    6-channel network and are refused.
    """
    kind = schedule.variance_type
    if kind in ("fixed_small", "fixed_small_log"):
        return schedule.posterior_log_variance_clipped.clone()
    if kind == "fixed_large":
        if schedule.T < 2:
            return torch.log(schedule.betas)
        return torch.log(torch.cat([schedule.posterior_variance[1:2], schedule.betas[1:]]))
    raise ValueError(
        f"The model's variance_type is {kind!r}; the bound can only be computed for fixed_small or "
        "fixed_large variances (a learned variance needs a 6-channel network)."
    )


@dataclass(frozen=True)
class LossWeights:
    """Per-t weights on the eps-MSE (mean over dims) of the two objectives, each (T,) float64.

    ``vlb``: lambda_t in nats/dim per unit eps-MSE, so that for t >= 1 and fixed variance
        L_t = lambda_t * eps_MSE_t + ``vlb_const[t]``   (exactly, when x0_hat is not clipped)
    ``vlb_const``: the variance-mismatch part of the KL, 0 for ``fixed_small``.
    ``simple``: all ones, L_simple weights every t equally (Ho et al. eq. 14).
    At t = 0 the true term is the discretised decoder, so ``vlb[0]`` is only the
    Gaussian-density analogue of the same formula.
    """

    vlb: torch.Tensor
    vlb_const: torch.Tensor
    simple: torch.Tensor

    def normalised(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(vlb, simple) each scaled to mean 1 over t, so the two shapes can share an axis."""
        return self.vlb / self.vlb.mean(), self.simple / self.simple.mean()


def loss_weights(schedule: Schedule) -> LossWeights:
    """The weight each objective puts on eps-MSE at every t (Ho et al. 2020, eq. 12 vs eq. 14).

    Derivation, for index t >= 1 with fixed model variance sigma_t^2:

    1. Both Gaussians use the posterior mean (eq. 7) with x0 or x0_hat:
       mu_tilde - mu_theta = coef1_t (x_0 - x0_hat),  coef1_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t).
    2. From x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (eq. 4) and eq. 15:
       x_0 - x0_hat = sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t) (eps_hat - eps).
    3. So mu_tilde - mu_theta = beta_t / (sqrt(alpha_t) sqrt(1 - alpha_bar_t)) (eps_hat - eps),
       using alpha_bar_t / alpha_bar_{t-1} = alpha_t.
    4. The Gaussian KL (:func:`normal_kl`) per dimension is |mu_tilde - mu_theta|^2 / (2 sigma_t^2)
       plus a constant 1/2 (-1 + log(sigma^2 / beta_tilde) + beta_tilde / sigma^2). Hence

           L_t / dim = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)) * eps_MSE_t + const_t.

    For ``fixed_small`` (sigma^2 = beta_tilde) this is beta_t / (2 alpha_t (1 - alpha_bar_{t-1})):
    large at small t, about beta_t / 2 at large t. L_simple drops the factor, which
    relatively down-weights the small-t (nearly clean) terms and up-weights large t.
    """
    logvar = model_log_variance(schedule)
    sigma2 = torch.exp(logvar)
    b, a, ab = schedule.betas, schedule.alphas, schedule.alpha_bar
    vlb = b**2 / (2.0 * sigma2 * a * (1.0 - ab))
    true_logvar = schedule.posterior_log_variance_clipped
    const = 0.5 * (-1.0 + logvar - true_logvar + torch.exp(true_logvar - logvar))
    return LossWeights(vlb=vlb, vlb_const=const, simple=torch.ones_like(vlb))


# ---------------------------------------------------------------------------------
# Batched evaluation over timesteps
# ---------------------------------------------------------------------------------


def _check_image(x0: torch.Tensor) -> None:
    if x0.ndim != 4 or x0.shape[0] != 1:
        raise ValueError(f"expected one image of shape (1, C, H, W), got {tuple(x0.shape)}")


def _as_timesteps(schedule: Schedule, timesteps) -> list[int]:
    ts = [int(t) for t in torch.as_tensor(timesteps).reshape(-1).tolist()]
    if any(t < 0 or t >= schedule.T for t in ts):
        raise ValueError(f"timestep indices must lie in 0..{schedule.T - 1}")
    return ts


def _draws(x0: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """n noise draws shaped like x0 each, drawn one at a time so batching never changes them."""
    return torch.cat([torch.randn(x0.shape, generator=generator, dtype=torch.float32) for _ in range(n)])


def _predict_x0(schedule: Schedule, x_t: torch.Tensor, eps_hat: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Batched eq. 15: x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t); t: (B,)."""
    return (x_t - gather(schedule.sqrt_one_minus_alpha_bar, t, x_t.ndim, x_t.dtype) * eps_hat) / gather(
        schedule.sqrt_alpha_bar, t, x_t.ndim, x_t.dtype
    )


def vb_terms_bpd(
    schedule: Schedule,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    eps_hat: torch.Tensor,
    t: torch.Tensor,
    clip_denoised: bool = True,
) -> torch.Tensor:
    """The bound's term at each (x_t, t) in bits/dim, given the network's eps_hat (improved-diffusion ``_vb_terms_bpd``).

    :param x0: (B, C, H, W) 8-bit-quantised clean images in [-1, 1] (float64 preferred).
    :param x_t: (B, C, H, W) samples of q(x_t | x_0).
    :param eps_hat: (B, C, H, W) eps_theta(x_t, t).
    :param t: (B,) LongTensor of indices.
    :returns: (B,) float64: for t >= 1, KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)) / ln 2;
        for t = 0, the decoder NLL -log p_theta(x_0 | x_t) / ln 2 (256 bins).

    Steps: (1) x0_hat from eq. 15, clipped to [-1, 1] if ``clip_denoised``; (2) mu_theta =
    posterior mean (eq. 7) with x0_hat, mu_tilde with x0; (3) log variances: the true one
    clipped, the model's from :func:`model_log_variance`; (4) Gaussian KL, or at t = 0 the
    discretised decoder with mean mu_theta (= x0_hat) and scale exp(logvar / 2).
    """
    x0, x_t, eps_hat = (v.to(torch.float64) for v in (x0, x_t, eps_hat))
    t = torch.as_tensor(t, dtype=torch.long).reshape(-1)
    x0_hat = _predict_x0(schedule, x_t, eps_hat, t)
    if clip_denoised:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    c1 = gather(schedule.posterior_mean_coef1, t, 4, torch.float64)
    c2 = gather(schedule.posterior_mean_coef2, t, 4, torch.float64)
    true_mean = c1 * x0 + c2 * x_t
    model_mean = c1 * x0_hat + c2 * x_t
    true_logvar = gather(schedule.posterior_log_variance_clipped, t, 4, torch.float64)
    logvar = gather(model_log_variance(schedule), t, 4, torch.float64)
    kl = mean_flat(normal_kl(true_mean, true_logvar, model_mean, logvar)) / LN2
    nll = -mean_flat(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * logvar)) / LN2
    return torch.where(t == 0, nll, kl)


def prior_bpd(schedule: Schedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) in bits/dim at the last index T - 1: (B,) float64.

    q(x_T | x_0) = N(sqrt(alpha_bar) x_0, (1 - alpha_bar) I) (eq. 4); about 1e-5 bits/dim for
    the linear schedule, and independent of the network.
    """
    x0 = x0.to(torch.float64)
    last = schedule.T - 1
    mean = schedule.sqrt_alpha_bar[last] * x0
    logvar = torch.log(1.0 - schedule.alpha_bar[last])
    return mean_flat(normal_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(mean))) / LN2


@dataclass(frozen=True)
class TermsResult:
    """Per-t terms of the bound for one image, each (K,) float64 unless said.

    ``timesteps``: (K,) long, in the order evaluated. ``terms_bpd``: Ho's L_t at each index
    (the decoder L_0 where t = 0, a KL elsewhere). ``eps_mse``: mean over dims of
    (eps_hat - eps)^2 for the same draw. ``prior_bpd``: L_T, a float.
    """

    timesteps: torch.Tensor
    terms_bpd: torch.Tensor
    eps_mse: torch.Tensor
    prior_bpd: float

    @property
    def total_bpd(self) -> float:
        """prior + sum of the terms: the bound itself when ``timesteps`` is all of 0..T-1 once."""
        return float(self.terms_bpd.sum()) + self.prior_bpd


def _network_batches(
    eps_model: EpsModel,
    x0: torch.Tensor,
    ts: list[int],
    noise: torch.Tensor,
    schedule: Schedule,
    batch_size: int,
    progress: Progress | None,
):
    """Yield (slice, t (b,), x_t (b,C,H,W) float32, eps (b,...), eps_hat (b,...)) for chunks of ts."""
    n = len(ts)
    batch_size = max(1, int(batch_size))
    if progress:
        progress(0, n)
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        t = torch.tensor(ts[sl], dtype=torch.long)
        eps = noise[sl]
        x_t, _ = q_sample(schedule, x0.expand(len(t), -1, -1, -1).float(), t, noise=eps)
        with torch.inference_mode():
            eps_hat = eps_model(x_t, t).float()
        yield sl, t, x_t, eps, eps_hat
        if progress:
            progress(sl.stop, n)


def vb_terms(
    eps_model: EpsModel,
    schedule: Schedule,
    x0: torch.Tensor,
    timesteps: Sequence[int] | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    clip_denoised: bool = True,
    progress: Progress | None = None,
) -> TermsResult:
    """Every requested term of the bound for one image, many timesteps per network call.

    :param eps_model: ``(x_t (B, C, H, W) float32, t (B,) long) -> eps_hat``, e.g. ``LoadedModel.eps``.
    :param x0: (1, C, H, W) image in [-1, 1]; it is quantised to 8 bits first.
    :param timesteps: indices to evaluate (default: all of T-1 .. 0, as ``calc_bpd_loop``).
    :param generator: source of the one eps draw per timestep (drawn in ``timesteps`` order,
        one at a time, so ``batch_size`` does not change the result).
    :param batch_size: how many timesteps go through the network together.
    :param progress: called as ``progress(done, total)`` after every batch.
    :returns: a :class:`TermsResult`; with the default timesteps, ``total_bpd`` is the bound
        on -log2 p(x_0) per dimension at this resolution.
    """
    _check_image(x0)
    x0q = quantize_8bit(x0.to(torch.float64))
    ts = list(range(schedule.T - 1, -1, -1)) if timesteps is None else _as_timesteps(schedule, timesteps)
    noise = _draws(x0, len(ts), generator)
    terms = torch.empty(len(ts), dtype=torch.float64)
    mse = torch.empty(len(ts), dtype=torch.float64)
    for sl, t, x_t, eps, eps_hat in _network_batches(eps_model, x0q, ts, noise, schedule, batch_size, progress):
        x0b = x0q.expand(len(t), -1, -1, -1)
        terms[sl] = vb_terms_bpd(schedule, x0b, x_t, eps_hat, t, clip_denoised)
        mse[sl] = mean_flat((eps_hat.double() - eps.double()) ** 2)
    return TermsResult(
        timesteps=torch.tensor(ts, dtype=torch.long),
        terms_bpd=terms,
        eps_mse=mse,
        prior_bpd=float(prior_bpd(schedule, x0q)[0]),
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
    :returns: a :class:`BPDEstimate`. The generator draws the timesteps, then the noise.
    """
    T = schedule.T
    if T < 2:
        res = vb_terms(eps_model, schedule, x0, [0], generator, batch_size, clip_denoised, progress)
        return BPDEstimate(res.total_bpd, 0.0, 0, float(res.terms_bpd[0]), res.prior_bpd, proposal, res)
    n = max(2, int(n))
    p = proposal_probs(schedule, proposal)
    idx = torch.multinomial(p, n, replacement=True, generator=generator)
    sampled = (idx + 1).sort(descending=True).values
    res = vb_terms(eps_model, schedule, x0, sampled.tolist() + [0], generator, batch_size, clip_denoised, progress)
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


def _training_target(schedule: Schedule, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    kind = schedule.prediction_type
    if kind == "epsilon":
        return eps
    sa = gather(schedule.sqrt_alpha_bar, t, x0.ndim, x0.dtype)
    s1 = gather(schedule.sqrt_one_minus_alpha_bar, t, x0.ndim, x0.dtype)
    if kind == "v_prediction":
        return sa * eps - s1 * x0  # Salimans & Ho 2022
    if kind == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {kind!r}")


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
    target = _training_target(schedule, xb, eps, t)
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
    """Bits/dim of the PNG and JPEG encodings of the same 8-bit picture: bytes * 8 / (3 H W).

    :param x0: (1, 3, H, W) or (3, H, W) in [-1, 1] at the working resolution.
    :returns: ``{"png": ..., "jpeg": ...}``. PNG is lossless (a true code length for these
        pixels, headers included); JPEG (quality 90, 4:2:0) is lossy, so it is only a rough
        reference. Both include a few hundred bytes of headers, which matter at 64 px.
    """
    from PIL import Image

    x = x0.detach().float().cpu()
    if x.ndim == 4:
        x = x[0]
    arr = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(np.ascontiguousarray(arr), mode="RGB")
    dims = 3 * arr.shape[0] * arr.shape[1]
    out = {}
    for name, kwargs in (
        ("png", {"format": "PNG", "optimize": True}),
        ("jpeg", {"format": "JPEG", "quality": jpeg_quality}),
    ):
        buf = io.BytesIO()
        img.save(buf, **kwargs)
        out[name] = len(buf.getvalue()) * 8 / dims
    return out


# ---------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------


def table_rows(timesteps: Sequence[int], max_rows: int = 24) -> list[int]:
    """Which indices to print for a long run: the first few, then about log-spaced, then the last."""
    ts = sorted(set(int(t) for t in timesteps))
    if len(ts) <= max_rows:
        return ts
    idx = np.unique(np.round(np.geomspace(1, len(ts), max_rows)).astype(int) - 1)
    return [ts[i] for i in idx]


def _parse_timesteps(value: str) -> str | int:
    if value == "all":
        return value
    try:
        n = int(value)
    except ValueError as exc:
        raise ValueError(f"--timesteps must be 'all' or a number of sampled t, got {value!r}") from exc
    if n < 2:
        raise ValueError("--timesteps N needs N >= 2 (the standard error needs two samples)")
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m model.likelihood IMAGE [--model DIR] [--res 64] [--timesteps all|N] [--seed S] [--proposal uniform|importance]``.

    Prints the per-t table and, as the last line, ``bits/dim: X.XXX``.
    """
    import argparse
    import sys

    from tqdm import tqdm

    from model.images import ImageLoadError, load_image
    from model.network import ModelLoadError, load_model

    p = argparse.ArgumentParser(prog="python -m model.likelihood", description=main.__doc__.splitlines()[0])
    p.add_argument("image", help="a PNG/JPEG/... file")
    p.add_argument("--model", default=None, help="model folder (default: the bundled checkpoints/photo-unet)")
    p.add_argument("--res", type=int, default=64, help="working resolution in px (default 64)")
    p.add_argument("--timesteps", default="all", help="'all' (every one of the T terms) or N sampled t (default all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="timesteps per network call (default: by --res)")
    p.add_argument(
        "--proposal",
        choices=PROPOSALS,
        default="uniform",
        help="how N sampled t are drawn: uniform (default) or importance (p(t) ~ the VLB weight; smaller error)",
    )
    args = p.parse_args(argv)
    try:
        mode = _parse_timesteps(args.timesteps)
        with open(args.image, "rb") as fh:
            x0 = load_image(fh.read(), args.res)
        model = load_model(args.model)
    except (OSError, ValueError, ImageLoadError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sched = model.schedule
    gen = torch.Generator().manual_seed(args.seed)
    batch_size = args.batch_size or default_batch_size(args.res)
    print(
        f"model: {model.source} ({model.num_parameters / 1e6:.2f} M params), schedule {sched.name}, "
        f"variance {sched.variance_type}, T = {sched.T}"
    )
    print(f"image: {args.image} at {args.res} px, 8-bit quantised, {3 * args.res * args.res} dims")
    bar = tqdm(total=1, unit="t", file=sys.stderr, desc="bound terms")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        if mode == "all":
            res = vb_terms(model.eps, sched, x0, None, gen, batch_size, progress=progress)
            total, stderr = res.total_bpd, 0.0
        else:
            est = estimate_bpd(model.eps, sched, x0, mode, gen, batch_size, progress=progress, proposal=args.proposal)
            res, total, stderr = est.terms, est.total_bpd, est.stderr
    except ValueError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    by_t = {int(t): (float(v), float(m)) for t, v, m in zip(res.timesteps, res.terms_bpd, res.eps_mse, strict=True)}
    rows = table_rows(by_t)
    shown = "subsampled, " if len(rows) < len(by_t) else ""
    print(f"per-t terms ({shown}{len(rows)} of {len(by_t)} computed; index 0 = decoder L_0, t >= 1 = KL L_t)")
    print(f"{'t':>5}  {'alpha_bar':>10}  {'bits/dim':>10}  {'eps-MSE':>9}")
    for t in rows:
        v, m = by_t[t]
        print(f"{t:>5}  {float(sched.alpha_bar[t]):>10.3e}  {v:>10.5f}  {m:>9.5f}")
    codec = codec_bpd(x0)
    print(f"decoder L_0: {by_t[0][0]:.4f}   prior L_T: {res.prior_bpd:.2e}")
    if mode == "all":
        print(f"sum of KL terms L_1..L_{{T-1}}: {float(res.terms_bpd.sum()) - by_t[0][0]:.4f}")
    else:
        print(
            f"estimate from {mode} {args.proposal}-sampled t (+ exact L_0): {total:.3f} ± {stderr:.3f} bits/dim "
            "(one standard error; it falls like 1/sqrt(N))"
        )
    print(f"reference: PNG {codec['png']:.3f} bits/dim, JPEG q90 {codec['jpeg']:.3f} bits/dim (lossy)")
    print(f"bits/dim: {total:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
