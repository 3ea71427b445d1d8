"""Classifier-free guidance (Ho & Salimans 2021): one class-conditional network, two predictions.

A network trained with label dropout predicts both ε̂(x_t, y), the noise given the class y, and
ε̂(x_t, ∅), the noise with the label replaced by the "no label" index. Guidance pushes the
prediction further in the direction that the label adds (Ho & Salimans 2021, eq. 6):

    ε̃ = ε̂(x_t, y) + w · (ε̂(x_t, y) − ε̂(x_t, ∅))  =  (1 + w) ε̂(x_t, y) − w ε̂(x_t, ∅)

w = 0 is the plain conditional model; larger w is meant to give samples more clearly of the class, and less
varied. Whether it does depends on the network: measure it (bench/guidance.py, with the judge). For the bundled
Fashion generator, guidance at every step made samples brighter and less recognisable as w grew; guidance in a
limited interval of t (Kynkäänniemi et al. 2024), which its ``classes.json`` names (``guidance_interval``,
:attr:`LoadedModel.guidance_interval`), kept them recognisable. Both predictions come from one forward pass on a
doubled batch, inside the interval and out (so a page can show both at every step).

Shapes: ``x_t`` (B, C, H, W) float32; ``t`` an int or a (B,) LongTensor; ``labels`` an int or a
(B,) LongTensor of class indices. Models are :class:`model.nets.network.LoadedModel` (anything with
``eps(x_t, t, class_labels)``, ``guidable`` and ``null_label``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.diffusion.reverse import EpsModel, predict_x0


def cfg_combine(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """ε̃ = ε̂(x_t, y) + w (ε̂(x_t, y) − ε̂(x_t, ∅))   (Ho & Salimans 2021, eq. 6); w = 0 gives ε̂(x_t, y)."""
    return eps_cond + w * (eps_cond - eps_uncond)


@dataclass(frozen=True)
class GuidedEps:
    """The three noise predictions at one step, each shaped like x_t: what guidance adds is ``eps_hat - eps_cond``."""

    eps_cond: torch.Tensor  # ε̂(x_t, y)
    eps_uncond: torch.Tensor  # ε̂(x_t, ∅)
    eps_hat: torch.Tensor  # the guided ε̃ that the sampler uses
    x0_hat: torch.Tensor | None = None  # x̂₀ of ε̃ (see guided_eps); None only where a caller built it without one


def check_guidance(model, labels, w: float) -> None:
    """Raise ``ValueError`` with one clear sentence when (labels, w) cannot be used with ``model``."""
    if not model.conditional:
        if labels is not None:
            raise ValueError("this model is unconditional: it takes no class label (leave the class out)")
        if w:
            raise ValueError("guidance needs a class-conditional model; this one is unconditional (use guidance 0)")
        return
    if w and labels is None:
        raise ValueError("guidance needs a class to push towards: choose a class, or use guidance 0")
    if w and not model.guidable:
        raise ValueError("this model has no 'no label' index (classes.json null_label), so guidance must be 0")
    if w < 0:
        raise ValueError(f"the guidance scale must be >= 0, got {w}")


def in_interval(t, interval: tuple[int, int] | None) -> bool:
    """Whether guidance applies at timestep index ``t`` (an int, or a (B,) tensor whose rows share one t, as in
    every sampler here): always without an ``interval``, else for ``lo <= t <= hi`` (both included).

    Guidance in a limited interval (Kynkäänniemi et al. 2024, who leave out the noisiest and the cleanest steps): at
    the noisiest steps guidance pushes every sample towards one bright mean shape. For the bundled Fashion generator
    leaving out t > 300 was enough (bench/guidance.py).
    """
    if interval is None:
        return True
    lo, hi = interval
    tt = int(torch.as_tensor(t).reshape(-1)[0])
    return lo <= tt <= hi


def rescale_cfg(eps_guided: torch.Tensor, eps_cond: torch.Tensor, phi: float) -> torch.Tensor:
    """CFG rescale (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", eq. 15-16, as
    diffusers' ``rescale_noise_cfg``): the guided prediction's per-sample std is brought back to the conditional
    one's, mixed with weight ``phi`` (0: plain CFG, 1: fully rescaled). Shapes (B, C, H, W)."""
    if not phi:
        return eps_guided
    dims = list(range(1, eps_guided.ndim))
    std_cond = eps_cond.std(dim=dims, keepdim=True)
    std_guided = eps_guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
    return phi * eps_guided * (std_cond / std_guided) + (1 - phi) * eps_guided


@torch.inference_mode()
def guided_eps(
    model, x_t: torch.Tensor, t, labels, w: float, interval: tuple[int, int] | None = None, rescale: float = 0.0
) -> GuidedEps:
    """ε̂(x_t, y), ε̂(x_t, ∅) and the guided ε̃, from one forward pass on the batch doubled, with x̂₀ of ε̃.

    With w = 0 (or an unconditional model) only ε̂(x_t, y) is computed and all three fields hold it. ``interval``:
    the t where guidance acts (:func:`in_interval`); None takes the model's own (``model.guidance_interval``, None
    for every t). Outside it both predictions are still made and ``eps_hat`` is ε̂(x_t, y). ``x0_hat`` comes from
    :meth:`LoadedModel.predict` (straight from the network output for v- and sample-predicting networks); x̂₀ is
    linear in the output, so combining the two x̂₀ with eq. 6's weights is the x̂₀ of ε̃, without a round trip
    through ε̂. ``rescale`` > 0 applies :func:`rescale_cfg` to ε̃, which is not linear, so no network output gives
    x̂₀ of the rescaled ε̃: it is eq. 15 from ε̃ (for a v- or sample-predicting network on the cosine schedule that
    loses about 6e-4 at t = T-1, see :func:`model.diffusion.reverse.step_x0_hat`).
    """
    check_guidance(model, labels, w)
    b = x_t.shape[0]
    if not w:
        e, x0 = model.predict(x_t, t, labels)
        return GuidedEps(e, e, e, x0)
    if interval is None:
        interval = getattr(model, "guidance_interval", None)
    y = torch.as_tensor(labels, dtype=torch.long).reshape(-1).expand(b)
    tt = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(b)
    null = torch.full_like(y, model.null_label)
    eps, x0 = model.predict(torch.cat([x_t, x_t]), torch.cat([tt, tt]), torch.cat([y, null]))
    cond, uncond = eps[:b], eps[b:]
    if not in_interval(t, interval):
        return GuidedEps(cond, uncond, cond, x0[:b])
    if rescale:
        eps_tilde = rescale_cfg(cfg_combine(cond, uncond, w), cond, rescale)
        return GuidedEps(cond, uncond, eps_tilde, predict_x0(model.schedule, x_t.float().cpu(), eps_tilde, tt))
    return GuidedEps(cond, uncond, cfg_combine(cond, uncond, w), cfg_combine(x0[:b], x0[b:], w))


def guided_eps_model(
    model, labels, w: float, interval: tuple[int, int] | None = None, rescale: float = 0.0
) -> EpsModel:
    """An ``(x_t, t) -> (ε̃, x̂₀)`` callable for :func:`model.diffusion.trajectory.sample_trajectory`: the guided
    prediction for ``labels`` at scale ``w`` and its x̂₀ (just ``model.predict`` for an unconditional model);
    ``interval`` and ``rescale`` as in :func:`guided_eps`."""
    check_guidance(model, labels, w)
    if not model.conditional:
        return model.predict

    def eps_model(x_t: torch.Tensor, t: torch.Tensor):
        return as_prediction(guided_eps(model, x_t, t, labels, w, interval, rescale))

    return eps_model


def as_prediction(g: GuidedEps):
    """What a sampler takes from :func:`guided_eps`: ``(ε̃, x̂₀)``, or ε̃ alone where x̂₀ is unknown."""
    return g.eps_hat if g.x0_hat is None else (g.eps_hat, g.x0_hat)


def guidance_help(model) -> str:
    """What the guidance scale does to ``model``, in plain words (the w slider's tooltip): no promise that a
    measurement contradicts (bench/guidance.py measures it with the judge)."""
    base = "0: the plain conditional model. Larger w pushes every step further towards the class and away from "
    base += "the unlabelled guess; the samples also get less varied."
    interval = getattr(model, "guidance_interval", None)
    if interval is None:
        return base + " Whether that draws the class more clearly depends on the network: it can also spoil them."
    return (
        base + f" This model guides only for {interval[0]} ≤ t ≤ {interval[1]}, the last, least noisy steps: "
        "guided at every step, its samples got brighter and less recognisable as w grew, while guided only there "
        "a separate classifier recognised the class asked for more often."
    )
