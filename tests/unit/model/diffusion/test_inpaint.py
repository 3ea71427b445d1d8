"""model/diffusion/inpaint.py: RePaint's known/unknown split, resampling, the blur baseline and the hole's sentences."""

from __future__ import annotations

import pytest
import torch

from model.diffusion import inpaint
from model.diffusion.schedule import make_schedule
from model.diffusion.trajectory import make_timesteps, oracle_eps_model, sample_trajectory

SCHEDULE = make_schedule("linear")
X0 = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def fake_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A closed-form stand-in for a network: eps_hat = 0.3 x_t."""
    return 0.3 * x_t


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_a_mask_of_nothing_is_plain_sampling(sampler):
    known = torch.zeros(1, 1, 16, 16)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    runs = list(inpaint.repaint(fake_model, SCHEDULE, X0, known, 12, sampler, generator=g1))
    x_T = torch.randn(X0.shape, generator=g2)
    plain = list(sample_trajectory(fake_model, SCHEDULE, x_T, make_timesteps(999, 12), sampler, generator=g2))
    assert len(runs) == len(plain) == 12
    for a, b in zip(runs, plain, strict=True):
        assert a.t == b.t and torch.equal(a.x_prev, b.x_prev) and torch.equal(a.x_t, b.x_t)


def test_everything_known_returns_the_photo_and_the_kept_part_is_noised_to_each_level():
    known = torch.ones(1, 1, 16, 16)
    recs = list(inpaint.repaint(fake_model, SCHEDULE, X0, known, 8, "ddpm", generator=torch.Generator().manual_seed(1)))
    assert torch.equal(recs[-1].x_prev, X0)
    mid = recs[3]  # the known part at t_prev has about x0's scale sqrt(alpha_bar) and noise's std sqrt(1 - alpha_bar)
    ab = SCHEDULE.alpha_bar_floats[mid.t_prev]
    resid = mid.known - ab**0.5 * X0
    assert float(resid.std()) == pytest.approx((1 - ab) ** 0.5, rel=0.15)


def test_an_oracle_fills_the_hole_with_the_photo_and_keeps_the_rest():
    known = inpaint.rectangle_mask(16, 0.25, 0.25, 0.75, 0.75)
    assert float(known.mean()) == pytest.approx(0.75)
    model = oracle_eps_model(SCHEDULE, X0)
    for resample in (1, 3):
        recs = list(inpaint.repaint(model, SCHEDULE, X0, known, 10, "ddim", resample, torch.Generator().manual_seed(2)))
        assert torch.allclose(recs[-1].x_prev, X0, atol=1e-4)
    blur = inpaint.blur_fill(X0, known)
    assert torch.equal(blur * known, X0 * known)
    assert inpaint.psnr_in_hole(recs[-1].x_prev, X0, known) > inpaint.psnr_in_hole(blur, X0, known)


@pytest.mark.parametrize(
    ("box", "words"),
    [((0.5, 0.5, 0.5, 0.9), "empty"), ((0, 0, 1, 1), "whole photo"), ((0, 0, 1, 0.95), "too little")],
)
def test_bad_holes_get_a_sentence(box, words):
    with pytest.raises(ValueError, match=words):
        inpaint.check_hole(inpaint.rectangle_mask(32, *box))


def test_bad_settings_are_refused():
    known = inpaint.rectangle_mask(16, 0.2, 0.2, 0.5, 0.5)
    with pytest.raises(ValueError, match="resampling"):
        next(inpaint.repaint(fake_model, SCHEDULE, X0, known, 5, resample=0))
    with pytest.raises(ValueError, match="px"):
        next(inpaint.repaint(fake_model, SCHEDULE, X0, torch.ones(1, 1, 8, 8), 5))
