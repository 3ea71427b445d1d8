"""model/particles/tilted.py: the true tilted target on a grid, exact mixture scores, and guidance's samples."""

from __future__ import annotations

import pytest
import torch

from model.diffusion.schedule import make_schedule
from model.particles import tilted

SCHEDULE = make_schedule("linear")
MIX = tilted.two_classes()


@pytest.mark.parametrize("gamma", [0.0, 1.0, 3.0, 7.0])
def test_grid_density_normalises(gamma):
    grid = tilted.tilted_grid(MIX, 0, gamma)
    assert float(grid.density.sum()) * grid.cell == pytest.approx(1.0, abs=1e-9)
    assert bool((grid.density >= 0).all())


def test_gamma_one_is_the_conditional():
    grid = tilted.tilted_grid(MIX, 1, 1.0)
    exact = tilted.log_density(MIX.of_class(1), grid.points()).exp().reshape(grid.density.shape)
    # the class's mass outside [-1.5, 1.5]^2 is negligible, so the numerical normalisation changes nothing visible
    assert torch.allclose(grid.density, exact, rtol=1e-3, atol=1e-6)


def test_gamma_zero_is_the_unconditional_and_tilting_moves_mass_away_from_the_other_class():
    g0 = tilted.tilted_grid(MIX, 0, 0.0)
    exact = tilted.log_density(MIX, g0.points()).exp().reshape(g0.density.shape)
    assert torch.allclose(g0.density, exact, rtol=1e-3, atol=1e-6)
    pts = tilted.tilted_grid(MIX, 0, 1.0).points()
    mean_x = {g: float((tilted.tilted_grid(MIX, 0, g).density.reshape(-1) * pts[:, 0]).sum()) for g in (1.0, 4.0)}
    assert mean_x[4.0] < mean_x[1.0]  # class 0 lies left of class 1: guidance pushes it further left


def test_score_is_the_gradient_of_the_log_density():
    x = torch.tensor([[0.1, -0.2], [-0.7, 0.5], [1.2, 0.0]], dtype=torch.float64, requires_grad=True)
    for ab in (1.0, 0.5, 0.01):
        (grad,) = torch.autograd.grad(tilted.log_density(MIX, x, ab).sum(), x)
        assert torch.allclose(tilted.score(MIX, x.detach(), ab), grad, atol=1e-9)


def test_guided_eps_at_gamma_one_and_zero():
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    t = torch.full((16,), 500)
    cond = tilted.eps_hat(SCHEDULE, MIX.of_class(0), x, t)
    assert torch.equal(tilted.guided_eps_model(SCHEDULE, MIX, 0, 1.0)(x, t), cond)
    uncond = tilted.eps_hat(SCHEDULE, MIX, x, t)
    assert torch.allclose(tilted.guided_eps_model(SCHEDULE, MIX, 0, 0.0)(x, t), uncond, atol=1e-6)
    # outside its interval the guided model is the plain conditional, inside it is not
    inter = tilted.guided_eps_model(SCHEDULE, MIX, 0, 3.0, interval=(0, 300))
    assert torch.equal(inter(x, t), cond)
    assert not torch.allclose(inter(x, torch.full((16,), 200)), tilted.eps_hat(SCHEDULE, MIX.of_class(0), x, 200))


def test_sampling_at_gamma_one_lands_on_the_class_and_strong_guidance_drifts():
    s = tilted.GuidanceSettings(c=0, gamma=1.0, n=300, steps=50)
    res = tilted.compare(SCHEDULE, MIX, s)
    assert res.to_class["CFG (DDIM)"] < 0.01
    assert res.to_class["CFG (DDPM)"] < 0.01
    strong = tilted.compare(SCHEDULE, MIX, tilted.GuidanceSettings(c=0, gamma=6.0, n=300, steps=50))
    assert strong.to_class["CFG (DDIM)"] > 10 * max(res.to_class["CFG (DDIM)"], 0.001)


def test_bad_gamma_is_refused():
    with pytest.raises(ValueError, match="gamma"):
        tilted.tilted_grid(MIX, 0, -1.0)
    with pytest.raises(ValueError, match="class"):
        MIX.of_class(5)
