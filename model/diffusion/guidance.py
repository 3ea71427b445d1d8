"""Classifier-free guidance (Ho & Salimans 2021): one class-conditional network, two predictions.

A network trained with label dropout predicts both ε̂(x_t, y), the noise given the class y, and
ε̂(x_t, ∅), the noise with the label replaced by the "no label" index. Guidance pushes the
prediction further in the direction that the label adds (Ho & Salimans 2021, eq. 6):

    ε̃ = ε̂(x_t, y) + w · (ε̂(x_t, y) − ε̂(x_t, ∅))  =  (1 + w) ε̂(x_t, y) − w ε̂(x_t, ∅)

w = 0 is the plain conditional model; larger w gives samples that are more clearly of the class,
and less varied. Both predictions come from one forward pass on a doubled batch.

Shapes: ``x_t`` (B, C, H, W) float32; ``t`` an int or a (B,) LongTensor; ``labels`` an int or a
(B,) LongTensor of class indices. Models are :class:`model.nets.network.LoadedModel` (anything with
``eps(x_t, t, class_labels)``, ``guidable`` and ``null_label``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.diffusion.reverse import EpsModel


def cfg_combine(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """ε̃ = ε̂(x_t, y) + w (ε̂(x_t, y) − ε̂(x_t, ∅))   (Ho & Salimans 2021, eq. 6); w = 0 gives ε̂(x_t, y)."""
    return eps_cond + w * (eps_cond - eps_uncond)


@dataclass(frozen=True)
class GuidedEps:
    """The three noise predictions at one step, each shaped like x_t: what guidance adds is ``eps_hat - eps_cond``."""

    eps_cond: torch.Tensor  # ε̂(x_t, y)
    eps_uncond: torch.Tensor  # ε̂(x_t, ∅)
    eps_hat: torch.Tensor  # the guided ε̃ that the sampler uses
    x0_hat: torch.Tensor | None = None  # x̂₀ of ε̃, combined from the two outputs' own x̂₀ (None: use eq. 15)


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


@torch.inference_mode()
def guided_eps(model, x_t: torch.Tensor, t, labels, w: float) -> GuidedEps:
    """ε̂(x_t, y), ε̂(x_t, ∅) and the guided ε̃, from one forward pass on the batch doubled, with x̂₀ of ε̃.

    With w = 0 (or an unconditional model) only ε̂(x_t, y) is computed and all three fields hold it.
    ``x0_hat`` comes from :meth:`LoadedModel.predict` (straight from the network output for v- and
    sample-predicting networks); x̂₀ is linear in the output, so combining the two x̂₀ with eq. 6's
    weights is the x̂₀ of ε̃, without a round trip through ε̂.
    """
    check_guidance(model, labels, w)
    b = x_t.shape[0]
    if not w:
        e, x0 = model.predict(x_t, t, labels)
        return GuidedEps(e, e, e, x0)
    y = torch.as_tensor(labels, dtype=torch.long).reshape(-1).expand(b)
    tt = torch.as_tensor(t, dtype=torch.long).reshape(-1).expand(b)
    null = torch.full_like(y, model.null_label)
    eps, x0 = model.predict(torch.cat([x_t, x_t]), torch.cat([tt, tt]), torch.cat([y, null]))
    cond, uncond = eps[:b], eps[b:]
    return GuidedEps(cond, uncond, cfg_combine(cond, uncond, w), cfg_combine(x0[:b], x0[b:], w))


def guided_eps_model(model, labels, w: float) -> EpsModel:
    """An ``(x_t, t) -> (ε̃, x̂₀)`` callable for :func:`model.diffusion.trajectory.sample_trajectory`: the guided
    prediction for ``labels`` at scale ``w`` and its x̂₀ (just ``model.predict`` for an unconditional model)."""
    check_guidance(model, labels, w)
    if not model.conditional:
        return model.predict

    def eps_model(x_t: torch.Tensor, t: torch.Tensor):
        return as_prediction(guided_eps(model, x_t, t, labels, w))

    return eps_model


def as_prediction(g: GuidedEps):
    """What a sampler takes from :func:`guided_eps`: ``(ε̃, x̂₀)``, or ε̃ alone where x̂₀ is unknown."""
    return g.eps_hat if g.x0_hat is None else (g.eps_hat, g.x0_hat)
