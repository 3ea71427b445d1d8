"""The particle lab's math: the exact denoiser, ODE and SDE paths, a live-trained MLP, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from model.diffusion.schedule import make_schedule
from model.particles import data, exact, flow, metrics, mlp, paths

SCHED = make_schedule("linear")
ONE = torch.tensor([[0.5, 0.3]])


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def test_exact_x0_hat_is_the_softmax_weighted_mean_of_the_points():
    pts = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    x = torch.tensor([[0.2, 0.5]])
    a, b = 0.8, 0.6
    w = exact.posterior_weights(pts, x, a, b)
    d2 = ((x - a * pts) ** 2).sum(1)
    expected = torch.softmax(-d2 / (2 * b * b), 0)
    assert torch.allclose(w[0], expected.double(), atol=1e-12)
    assert torch.allclose(exact.exact_x0_hat(pts, x, a, b), (expected[:, None] * pts).sum(0, keepdim=True), atol=1e-6)


def test_one_point_exact_eps_is_the_true_noise_and_x0_hat_is_the_point():
    x0 = ONE.expand(5, 2)
    eps = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    t = 600
    ab = SCHED.alpha_bar_floats[t]
    x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * eps
    assert torch.allclose(exact.vp_x0_hat(SCHED, ONE, x_t, t), x0, atol=1e-5)
    assert torch.allclose(exact.vp_eps_hat(SCHED, ONE, x_t, t), eps, atol=1e-4)


def test_one_point_gives_straight_paths_ending_at_it():
    x1 = paths.start_noise(64, seed=1)
    fpath = flow.flow_paths(exact.exact_velocity_model(ONE), x1, num_steps=12)
    assert (fpath[-1] - ONE).abs().max() < 1e-4
    assert paths.max_off_chord(fpath).max() < 1e-4
    vp = paths.vp_paths(exact.exact_eps_model(SCHED, ONE), SCHED, x1, num_steps=12, sampler="ddim")
    assert (vp[-1] - ONE).abs().max() < 1e-4
    straight = paths.vp_path_in_flow_coords(vp, SCHED, 12)  # DDIM's path is a line in the flow frame
    assert paths.max_off_chord(straight).max() < 1e-4
    assert paths.straightness(straight).min() > 1 - 1e-4


def test_two_points_bend_the_paths():
    pts = torch.tensor([[0.7, 0.0], [-0.7, 0.0]])
    x1 = paths.start_noise(256, seed=2)
    fpath = flow.flow_paths(exact.exact_velocity_model(pts), x1, num_steps=32)
    assert paths.max_off_chord(fpath).max() > 0.05  # particles near the midline turn towards one point


def test_exact_ddim_samples_end_on_training_points():
    pts = data.make_dataset("few points", 7, seed=3)
    x1 = paths.start_noise(200, seed=4)
    vp = paths.vp_paths(exact.exact_eps_model(SCHED, pts), SCHED, x1, num_steps=50, sampler="ddim")
    nearest = torch.cdist(vp[-1], pts).min(1).values
    assert nearest.max() < 1e-3
    # and not all on one point: the seeds spread over the set
    assert len(set(torch.cdist(vp[-1], pts).argmin(1).tolist())) == 7


def test_ode_and_sde_start_from_the_same_seed_and_differ_after():
    pts = data.make_dataset("moons", 300, seed=0)
    x1 = paths.start_noise(32, seed=5)
    model = exact.exact_eps_model(SCHED, pts)
    ode = paths.vp_paths(model, SCHED, x1, 20, "ddim")
    sde = paths.vp_paths(model, SCHED, x1, 20, "ddpm", seed=9)
    assert torch.equal(ode[0], sde[0])
    assert (ode[-1] - sde[-1]).norm(dim=1).mean() > 0.05
    assert torch.equal(sde, paths.vp_paths(model, SCHED, x1, 20, "ddpm", seed=9))  # fixed seed, same path


def test_velocity_from_eps_matches_the_exact_flow_velocity():
    """The conversion eps-network -> flow velocity agrees with the flow's own exact denoiser (one point: both exact)."""
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(6))
    sigma = torch.full((16,), 0.4)
    v_conv = flow.velocity_from_eps(SCHED, exact.exact_eps_model(SCHED, ONE))(x, sigma)
    assert torch.allclose(v_conv, exact.exact_velocity(ONE, x, sigma), atol=1e-4)


def test_mmd_separates_noise_from_data_and_is_small_for_the_same_distribution():
    ref = data.make_dataset("moons", 1500, seed=1)
    assert abs(metrics.mmd(data.make_dataset("moons", 1500, seed=2), ref)) < 0.002
    assert metrics.mmd(paths.start_noise(1500, 3), ref) > 0.05
    assert metrics.mmd(torch.full((10, 2), float("nan")), ref) == math.inf


@pytest.mark.slow
def test_trained_flow_model_reaches_small_mmd_in_16_steps():
    pts = data.make_dataset("moons", 1000, seed=0)
    ref = data.make_dataset("moons", 1500, seed=1)
    x1 = paths.start_noise(1500, seed=7)
    config = mlp.TrainConfig(kind="flow", steps=1500, seed=0)
    untrained = mlp.train_to_end(pts, SCHED, mlp.TrainConfig(kind="flow", steps=1, seed=0)).net
    before = metrics.mmd(flow.flow_paths(mlp.as_velocity_model(untrained), x1, 16)[-1], ref)
    last = mlp.train_to_end(pts, SCHED, config)
    after = metrics.mmd(flow.flow_paths(mlp.as_velocity_model(last.net), x1, 16)[-1], ref)
    assert before > 0.02  # the threshold means something: an untrained network does not pass it
    assert after < 0.02, after
    assert last.losses[-1] < last.losses[0]


def test_training_with_a_fixed_seed_is_identical_and_reports_progress():
    pts = data.make_dataset("rings", 200, seed=0)
    config = mlp.TrainConfig(kind="epsilon", steps=40, batch=64, report_every=10, seed=3)
    reports = list(mlp.train(pts, SCHED, config))
    assert [r.step for r in reports] == [10, 20, 30, 40] and reports[-1].done
    again = mlp.train_to_end(pts, SCHED, config)
    assert reports[-1].losses == again.losses
    for a, b in zip(reports[-1].net.parameters(), again.net.parameters(), strict=True):
        assert torch.equal(a, b)
    other = mlp.train_to_end(pts, SCHED, mlp.TrainConfig(kind="epsilon", steps=40, batch=64, seed=4))
    assert other.losses != again.losses


def test_trained_eps_model_runs_through_the_trajectory_generator():
    pts = data.make_dataset("moons", 200, seed=0)
    net = mlp.train_to_end(pts, SCHED, mlp.TrainConfig(kind="epsilon", steps=20, batch=32)).net
    out = paths.vp_paths(mlp.as_eps_model(net, SCHED), SCHED, paths.start_noise(8, 0), 5, "ddpm")
    assert out.shape == (6, 8, 2) and torch.isfinite(out).all()


def test_datasets_are_seeded_and_in_range():
    for name, n in (("moons", 300), ("rings", 300), ("few points", 5)):
        a, b = data.make_dataset(name, n, seed=1), data.make_dataset(name, n, seed=1)
        assert a.shape == (n, 2) and torch.equal(a, b)
        assert a.abs().max() < 1.3


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no points"),
        ("   \n# only a comment\n", "no points"),
        ("0.1, 0.2\n0.3", "Line 2"),
        ("nan, 0.2", "NaN"),
        ("0.1, inf", "NaN or infinite"),
        ("9, 0", "outside"),
        ("a, b", "not two numbers"),
    ],
)
def test_bad_points_get_one_sentence(text, words):
    with pytest.raises(ValueError, match=words) as info:
        data.parse_points(text)
    message = str(info.value)
    assert message.endswith(".") and message.count(". ") == 0  # one sentence


def test_typed_and_brushed_points_parse():
    pts = data.parse_points("0.1, 0.2\n-0.5 0.5  # a comment\n\n0.3;0.4")
    assert torch.allclose(pts, torch.tensor([[0.1, 0.2], [-0.5, 0.5], [0.3, 0.4]]))
    one = data.parse_points("0.5, 0.3")
    assert one.shape == (1, 2)  # one point is a valid (teaching) data set
    grid = data.brush_grid()
    assert torch.equal(data.brushed([5, 3, 5, 10_000], grid), grid[[3, 5]])
    with pytest.raises(ValueError, match="no points"):
        data.brushed([], grid)


def test_model_imports_no_ui():
    import subprocess
    import sys

    code = "import sys, model.particles.race, model.particles.mlp; print('streamlit' in sys.modules, 'plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
