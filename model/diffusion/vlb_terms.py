"""The variational bound term by term, in bits/dim: the Gaussian building blocks, the model's
fixed variance, the per-t loss weights, each term L_t from one eps_hat, the prior L_T, and
every requested term for one image with many timesteps per network call (:func:`vb_terms`).

The chain (Ho et al. 2020, eqs. 1-5), the timestep convention, the units and the model
variance are described in :mod:`model.diffusion.likelihood`, which re-exports every name here; the
sampled estimate, the simple loss, the training step and the command line build on this.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from model.diffusion.forward import q_sample
from model.diffusion.reverse import predict_x0, q_posterior
from model.diffusion.schedule import Schedule, gather

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
    x0_hat = predict_x0(schedule, x_t, eps_hat, t)
    if clip_denoised:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    true_mean, _, true_logvar = q_posterior(schedule, x0, x_t, t)
    model_mean, _, _ = q_posterior(schedule, x0_hat, x_t, t)
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
    decoder_generator: torch.Generator | None = None,
) -> TermsResult:
    """Every requested term of the bound for one image, many timesteps per network call.

    :param eps_model: ``(x_t (B, C, H, W) float32, t (B,) long) -> eps_hat``, e.g. ``LoadedModel.eps``.
    :param x0: (1, C, H, W) image in [-1, 1]; it is quantised to 8 bits first.
    :param timesteps: indices to evaluate (default: all of T-1 .. 0, as ``calc_bpd_loop``).
    :param generator: source of the one eps draw per timestep (drawn in ``timesteps`` order,
        one at a time, so ``batch_size`` does not change the result).
    :param batch_size: how many timesteps go through the network together.
    :param progress: called as ``progress(done, total)`` after every batch.
    :param decoder_generator: if given, the source of the draw at t = 0 alone (the decoder L_0's x_1, so L_0 is
        the same number whatever other timesteps come with it); otherwise t = 0 draws from ``generator`` in turn.
    :returns: a :class:`TermsResult`; with the default timesteps, ``total_bpd`` is the bound
        on -log2 p(x_0) per dimension at this resolution.
    """
    _check_image(x0)
    x0q = quantize_8bit(x0.to(torch.float64))
    ts = list(range(schedule.T - 1, -1, -1)) if timesteps is None else _as_timesteps(schedule, timesteps)
    if decoder_generator is None:
        noise = _draws(x0, len(ts), generator)
    else:
        noise = torch.cat([_draws(x0, 1, decoder_generator if t == 0 else generator) for t in ts])
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
