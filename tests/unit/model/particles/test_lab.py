"""The particle lab page's compositions (model/particles/lab.py): the exact field, the paths and a trained
network's view, pure functions of the page's settings."""

from __future__ import annotations

import math

import torch

from model.diffusion.forward import q_sample
from model.diffusion.schedule import make_schedule
from model.particles import lab, mlp, paths

SCHED = make_schedule("linear")
THREE = torch.tensor([[0.5, 0.3], [-0.5, -0.2], [0.0, 0.6]])


def test_the_grid_covers_the_square_row_by_row():
    g = lab.grid(5)
    assert g.shape == (25, 2)
    assert torch.equal(g[0], torch.tensor([-lab.GRID_EXTENT, -lab.GRID_EXTENT]))
    assert torch.equal(g[-1], torch.tensor([lab.GRID_EXTENT, lab.GRID_EXTENT]))
    assert g[1, 0] > g[0, 0] and g[1, 1] == g[0, 1]  # x runs fastest


def test_one_point_s_exact_field_points_at_it_in_both_parametrisations():
    one = THREE[:1]
    for flow_matching in (False, True):
        f = lab.exact_field(SCHED, one, 400, flow_matching)
        assert f.field.shape == f.grid.shape == (lab.GRID_N**2, 2) and f.noisy.shape == (1, 2)
        # flow: -v = (x0 - x) / sigma; VP: 1/2 beta (x - eps_hat / sqrt(1 - alpha_bar)) = c (x0 - sqrt(alpha_bar) x)
        toward = one - f.grid if flow_matching else one - math.sqrt(SCHED.alpha_bar_floats[400]) * f.grid
        cos = torch.nn.functional.cosine_similarity(f.field.double(), toward.double(), dim=1)
        assert float(cos.min()) > 0.999, flow_matching
    assert lab.exact_field(SCHED, one, 999, True).sigma == 1.0


def test_the_noisy_points_are_q_sample_of_the_seeded_noise():
    f = lab.exact_field(SCHED, THREE, 250, False)
    want, _ = q_sample(SCHED, THREE, 250, noise=paths.start_noise(3, seed=lab.NOISE_SEED))
    assert torch.equal(f.noisy, want)


def test_paths_are_the_ode_and_sde_from_one_start_and_end_on_the_points():
    vp = lab.exact_paths(SCHED, THREE, 40, seed=0, flow_matching=False)
    assert list(vp) == ["ODE (DDIM, η = 0)", "SDE (DDPM)"]
    ode, sde = vp.values()
    assert ode.shape == sde.shape == (41, lab.N_PATHS, 2) and torch.equal(ode[0], sde[0])
    assert not torch.equal(ode[1:], sde[1:])
    fm = lab.exact_paths(SCHED, THREE, 40, seed=0, flow_matching=True)
    assert list(fm) == ["ODE (Euler on v̂)", "SDE (DDPM, in the flow frame)"]
    f_ode, f_sde = fm.values()
    assert f_ode.shape == f_sde.shape == (41, lab.N_PATHS, 2)
    torch.testing.assert_close(f_sde[0], f_ode[0])  # one start, in the flow frame
    assert not torch.allclose(f_sde[1:], f_ode[1:], atol=1e-3)
    for path in (ode, sde, f_ode, f_sde):
        assert lab.nearest_distance(path, THREE) < 0.02


def test_a_trained_network_s_view_has_its_field_samples_and_score():
    cfg = mlp.TrainConfig(kind="epsilon", steps=50, seed=0)
    net = mlp.train_to_end(THREE, SCHED, cfg).net.eval()
    g = lab.grid(4)
    view = lab.learned(SCHED, net, THREE, g, 300, flow_matching=False)
    assert view.field.shape == (16, 2) and view.samples.shape == (lab.N_SAMPLES, 2)
    assert math.isfinite(view.mmd) and not view.field.requires_grad  # the unbiased MMD² may dip below 0
    assert math.isnan(lab.learned(SCHED, net, THREE[:1], g, 300, flow_matching=False).mmd)
