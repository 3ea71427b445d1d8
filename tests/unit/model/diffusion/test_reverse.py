"""Math of the reverse trajectory (model/diffusion/reverse.py): closed-form fake models on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from model.diffusion.forward import q_sample
from model.diffusion.schedule import make_schedule
from model.diffusion.trajectory import make_timesteps, oracle_eps_model, sample_trajectory

SCHED = make_schedule("linear")


def _start(x0, t_start, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_t, _ = q_sample(SCHED, x0, t_start, generator=g)
    return x_t


def _shrink_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A closed-form, non-oracle eps-model: the trajectory depends on it but not on any randomness."""
    return 0.5 * x_t + 0.1


def _run(model, x_start, ts, sampler, eta=0.0, seed=None):
    g = None if seed is None else torch.Generator().manual_seed(seed)
    return list(sample_trajectory(model, SCHED, x_start, ts, sampler, eta, g))


# --- the oracle eps-model brings back x_0 ------------------------------------------------


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("steps", [1, 2, 50, 1000])
def test_oracle_returns_x0(x0_small, sampler, steps):
    ts = make_timesteps(999, steps)
    recs = _run(oracle_eps_model(SCHED, x0_small), _start(x0_small, 999), ts, sampler, seed=1)
    assert len(recs) == len(ts) == steps
    # every step's x0 estimate is x_0 itself, and the final sample lands on x_0
    for r in recs:
        torch.testing.assert_close(r.x0_hat, x0_small, atol=2e-3, rtol=0)
    torch.testing.assert_close(recs[-1].x_prev, x0_small, atol=2e-3, rtol=0)


def test_oracle_from_partial_noise(x0_small):
    recs = _run(oracle_eps_model(SCHED, x0_small), _start(x0_small, 300), make_timesteps(300, 7), "ddpm", seed=3)
    assert [r.t for r in recs][0] == 300
    torch.testing.assert_close(recs[-1].x_prev, x0_small, atol=1e-4, rtol=0)


# --- records: indices and the t / t_prev sequence -----------------------------------------


def test_records_carry_t_and_t_prev(x0_small):
    ts = make_timesteps(999, 5)
    assert ts == [999, 749, 500, 250, 0]
    recs = _run(_shrink_model, _start(x0_small, 999), ts, "ddim")
    assert [r.index for r in recs] == [0, 1, 2, 3, 4]
    assert {r.num_steps for r in recs} == {5}
    assert [r.t for r in recs] == ts
    assert [r.t_prev for r in recs] == [749, 500, 250, 0, -1]
    for a, b in zip(recs, recs[1:], strict=False):
        assert b.x_t is a.x_prev  # each step starts where the last one landed (no copies)
    for r in recs:
        assert r.x_t.shape == r.eps_hat.shape == r.x0_hat.shape == r.x_prev.shape == x0_small.shape
        assert r.x_t.dtype == torch.float32


def test_first_record_is_the_start(x0_small):
    x = _start(x0_small, 640)
    recs = _run(_shrink_model, x, make_timesteps(640, 3), "ddpm", seed=0)
    assert recs[0].x_t is x and recs[0].t == 640


# --- determinism ----------------------------------------------------------------------


def test_ddim_eta0_is_deterministic(x0_small):
    ts = make_timesteps(999, 20)
    a = _run(_shrink_model, _start(x0_small, 999, seed=5), ts, "ddim", 0.0, seed=1)
    b = _run(_shrink_model, _start(x0_small, 999, seed=5), ts, "ddim", 0.0, seed=2)  # generator unused at eta = 0
    for ra, rb in zip(a, b, strict=True):
        assert torch.equal(ra.x_prev, rb.x_prev) and torch.equal(ra.eps_hat, rb.eps_hat)


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 0.7)])
def test_stochastic_samplers_follow_the_seed(x0_small, sampler, eta):
    ts = make_timesteps(999, 20)
    x = _start(x0_small, 999)
    a = _run(_shrink_model, x, ts, sampler, eta, seed=11)[-1].x_prev
    b = _run(_shrink_model, x, ts, sampler, eta, seed=11)[-1].x_prev
    c = _run(_shrink_model, x, ts, sampler, eta, seed=12)[-1].x_prev
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


# --- make_timesteps edge cases --------------------------------------------------------------


@pytest.mark.parametrize(
    "t_start,n,expected",
    [
        (999, 1, [999]),
        (999, 2, [999, 0]),
        (999, 4, [999, 666, 333, 0]),
        (0, 1, [0]),
        (0, 5, [0]),
        (1, 2, [1, 0]),
        (5, 10, [5, 4, 3, 2, 1, 0]),
    ],
)
def test_make_timesteps_cases(t_start, n, expected):
    assert make_timesteps(t_start, n) == expected


def test_make_timesteps_full_and_invariants():
    assert make_timesteps(999, 1000) == list(range(999, -1, -1))
    assert make_timesteps(999, 5000) == list(range(999, -1, -1))
    for t_start in (1, 7, 100, 999):
        for n in (2, 3, 10, 50, 999):
            ts = make_timesteps(t_start, n)
            assert ts[0] == t_start and ts[-1] == 0
            assert len(ts) == min(n, t_start + 1)
            assert all(b < a for a, b in zip(ts, ts[1:], strict=False))


@pytest.mark.parametrize("t_start,n", [(-1, 5), (10, 0)])
def test_make_timesteps_rejects(t_start, n):
    with pytest.raises(ValueError):
        make_timesteps(t_start, n)


@pytest.mark.parametrize("ts", [[], [5, 5], [3, 7], [1000, 0], [3, -1]])
def test_sample_trajectory_rejects_bad_timesteps(x0_small, ts):
    with pytest.raises(ValueError):
        _run(_shrink_model, x0_small, ts, "ddim")


# --- cross-check against diffusers' schedulers -----------------------------------------------------


def _diffusers_loop(scheduler, x, seed=None):
    g = None if seed is None else torch.Generator().manual_seed(seed)
    for t in scheduler.timesteps:
        eps = _shrink_model(x, t)
        x = scheduler.step(eps, t, x, generator=g).prev_sample
    return x


def test_ddim_matches_diffusers(x0_small):
    from diffusers import DDIMScheduler

    sch = DDIMScheduler.from_config(SCHED.to_scheduler_config())
    sch.set_timesteps(25)
    x = _start(x0_small, 999)
    ours = _run(_shrink_model, x, sch.timesteps.tolist(), "ddim")[-1].x_prev
    torch.testing.assert_close(ours, _diffusers_loop(sch, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("steps", [1000, 20])
def test_ddpm_matches_diffusers(x0_small, steps):
    from diffusers import DDPMScheduler

    sch = DDPMScheduler.from_config(SCHED.to_scheduler_config())
    sch.set_timesteps(steps)
    x = _start(x0_small, 999)
    ours = _run(_shrink_model, x, sch.timesteps.tolist(), "ddpm", seed=4)[-1].x_prev
    torch.testing.assert_close(ours, _diffusers_loop(sch, x, seed=4), atol=1e-3, rtol=1e-3)
