"""Math layer: schedules and the forward process q."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from model.diffusion.forward import q_chain, q_chain_sample, q_sample, q_step
from model.diffusion.schedule import alpha_bar_at, make_schedule, schedule_from_config


@pytest.mark.parametrize("name", ["linear", "cosine", "scaled_linear"])
def test_alpha_bar_strictly_decreasing_and_in_range(name):
    s = make_schedule(name)
    assert s.T == 1000
    assert s.betas.dtype == torch.float64
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())
    assert 0 < float(s.alpha_bar[-1]) < float(s.alpha_bar[0]) < 1


def test_linear_schedule_matches_ho_et_al():
    s = make_schedule("linear")
    assert float(s.betas[0]) == pytest.approx(1e-4)
    assert float(s.betas[-1]) == pytest.approx(0.02)
    assert float(s.sqrt_one_minus_alpha_bar[0]) == pytest.approx(0.01)
    # alpha_bar_T is tiny: x_T is essentially pure noise (Ho et al. report L_T ~ 1e-5 bits/dim)
    assert float(s.alpha_bar[-1]) < 1e-4


def test_derived_quantities_are_consistent():
    s = make_schedule("cosine")
    t = 321
    ab, ab_prev, beta = float(s.alpha_bar[t]), float(s.alpha_bar[t - 1]), float(s.betas[t])
    assert float(s.snr[t]) == pytest.approx(ab / (1 - ab))
    assert float(s.posterior_variance[t]) == pytest.approx((1 - ab_prev) / (1 - ab) * beta)
    assert float(s.sqrt_alpha_bar[t] ** 2 + s.sqrt_one_minus_alpha_bar[t] ** 2) == pytest.approx(1.0)
    assert float(s.posterior_variance[0]) == 0.0
    # cosine: alpha_bar follows cos^2 closely away from the clipped end
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert float(s.alpha_bar[t]) == pytest.approx(f((t + 1) / 1000) / f(0), rel=1e-6)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedule_round_trips_through_diffusers_config(name):
    from diffusers import DDPMScheduler

    s = make_schedule(name, prediction_type="v_prediction", clip_sample=False)
    cfg = s.to_scheduler_config()
    again = schedule_from_config(cfg)
    assert torch.allclose(again.alpha_bar, s.alpha_bar)
    assert again.prediction_type == "v_prediction" and again.clip_sample is False
    ref = DDPMScheduler.from_config({k: v for k, v in cfg.items() if k != "_class_name"})
    assert torch.allclose(ref.alphas_cumprod.double(), s.alpha_bar, rtol=1e-5)


def test_bad_schedule_config_is_refused():
    with pytest.raises(ValueError):
        schedule_from_config({"beta_schedule": "sigmoid-ish"})
    with pytest.raises(ValueError):
        schedule_from_config({"prediction_type": "score"})


def test_alpha_bar_at_is_the_schedule_at_indices_and_interpolates_like_diffusers_euler_between():
    """One home for alpha_bar at any t (the frequency view's ints, the particle lab's floats)."""
    import numpy as np
    from diffusers import EulerDiscreteScheduler

    sched = make_schedule("linear")
    idx = torch.tensor([0, 1, 500, 999])
    assert torch.equal(alpha_bar_at(sched, idx), sched.alpha_bar[idx])  # exactly, not merely close
    assert float(alpha_bar_at(sched, 7)) == sched.alpha_bar_floats[7] and alpha_bar_at(sched, 7).shape == ()
    grid = alpha_bar_at(sched, np.array([[0.0, 0.5], [998.25, 999.0]]))
    assert grid.shape == (2, 2) and grid.dtype == torch.float64
    mid = float(alpha_bar_at(sched, 500.5))
    assert sched.alpha_bar_floats[501] < mid < sched.alpha_bar_floats[500]
    # diffusers' Euler interpolates sigma linearly in t: the same alpha_bar = 1 / (1 + sigma^2) at its float timesteps
    euler = EulerDiscreteScheduler.from_config(sched.to_scheduler_config())
    euler.set_timesteps(7)
    ts, sigmas = euler.timesteps.double(), euler.sigmas[:-1].double()
    torch.testing.assert_close(alpha_bar_at(sched, ts.numpy()), 1 / (1 + sigmas**2), rtol=1e-5, atol=0)
    for bad in (-0.5, 999.5, float("nan")):
        with pytest.raises(ValueError, match="0..999"):
            alpha_bar_at(sched, bad)


def test_q_sample_at_t0_is_nearly_x0_and_uses_the_generator(x0_small):
    s = make_schedule("linear")
    x_t, eps = q_sample(s, x0_small, 0, torch.Generator().manual_seed(1))
    assert eps.shape == x0_small.shape
    assert float((x_t - x0_small).abs().max()) < 0.06  # 0.01 * |eps| with |eps| < 6
    again, _ = q_sample(s, x0_small, 0, torch.Generator().manual_seed(1))
    assert torch.equal(x_t, again)
    other, _ = q_sample(s, x0_small, 0, torch.Generator().manual_seed(2))
    assert not torch.equal(x_t, other)


def test_q_sample_closed_form_with_given_noise(x0_small):
    s = make_schedule("linear")
    noise = torch.randn(x0_small.shape, generator=torch.Generator().manual_seed(0))
    x_t, eps = q_sample(s, x0_small, 500, noise=noise)
    expect = math.sqrt(float(s.alpha_bar[500])) * x0_small + math.sqrt(1 - float(s.alpha_bar[500])) * noise
    assert torch.allclose(x_t, expect, atol=1e-6)
    assert eps is noise


def test_q_sample_per_item_timesteps(x0_small):
    s = make_schedule("linear")
    noise = torch.zeros_like(x0_small)
    x_t, _ = q_sample(s, x0_small, torch.tensor([0, 999]), noise=noise)
    assert torch.allclose(x_t[0], float(s.sqrt_alpha_bar[0]) * x0_small[0])
    assert torch.allclose(x_t[1], float(s.sqrt_alpha_bar[999]) * x0_small[1])


def test_out_of_range_timestep_is_an_error(x0_small):
    s = make_schedule("linear")
    with pytest.raises(ValueError):
        q_sample(s, x0_small, 1000)
    with pytest.raises(ValueError):
        q_step(s, x0_small, -1)


def test_chain_visits_every_step_once(x0_small):
    s = make_schedule("linear")
    steps = [k for k, _ in q_chain(s, x0_small, 9, torch.Generator().manual_seed(0))]
    assert steps == list(range(10))


@pytest.mark.parametrize("t", [1, 10, 100, 999])
def test_chain_equals_one_jump_in_distribution(t):
    """Mean and variance per pixel of x_t from the chain match the closed form.

    N = 4000 independent chains of a fixed 2x2x3 image. The sample mean of N draws has
    standard error sd / sqrt(N), and the sample variance has standard error
    var * sqrt(2 / (N - 1)); we allow 5 standard errors per pixel (12 pixels, so a
    false alarm has probability far below 1e-4).
    """
    s = make_schedule("linear")
    N = 4000
    x0 = torch.tensor([-0.9, -0.3, 0.2, 0.8] * 3).reshape(1, 3, 2, 2).expand(N, 3, 2, 2).contiguous()
    x_t = q_chain_sample(s, x0, t, torch.Generator().manual_seed(t))
    ab = float(s.alpha_bar[t])
    mean_expected = math.sqrt(ab) * x0[0]
    var_expected = 1 - ab
    sd = math.sqrt(var_expected)
    assert torch.all((x_t.mean(0) - mean_expected).abs() < 5 * sd / math.sqrt(N))
    assert torch.all((x_t.var(0) - var_expected).abs() < 5 * var_expected * math.sqrt(2 / (N - 1)))
    # the closed form, drawn the same way, passes the same check (the test is not vacuous)
    jump, _ = q_sample(s, x0, t, torch.Generator().manual_seed(10_000 + t))
    assert torch.all((jump.mean(0) - mean_expected).abs() < 5 * sd / math.sqrt(N))


def test_chain_with_a_wrong_beta_would_be_caught():
    """Sanity check of the test above: a chain that adds sqrt(2) too much noise fails it."""
    s = make_schedule("linear")
    N, t = 4000, 100
    x0 = torch.zeros(N, 1, 1, 1)
    x = x0
    g = torch.Generator().manual_seed(0)
    for k in range(t + 1):
        beta = 2 * float(s.betas[k])
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * torch.randn(x.shape, generator=g)
    var_expected = 1 - float(s.alpha_bar[t])
    assert not bool(((x.var(0) - var_expected).abs() < 5 * var_expected * math.sqrt(2 / (N - 1))).all())


def test_model_package_imports_no_ui_libraries():
    """Nothing under model/ imports streamlit or plotly (checked in a fresh interpreter)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[4]
    code = (
        "import importlib, pkgutil, sys, model\n"
        "for m in pkgutil.iter_modules(model.__path__):\n"
        "    importlib.import_module('model.' + m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('streamlit', 'plotly'))\n"
        "print(len(list(pkgutil.iter_modules(model.__path__))), bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
