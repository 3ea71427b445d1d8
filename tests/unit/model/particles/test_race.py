"""The sampler race on diffusers' schedulers: evaluation counts, finite outputs, fresh state, flow vs eps."""

from __future__ import annotations

import pytest
import torch

from model.diffusion.schedule import make_schedule
from model.particles import data, metrics, paths, race

SCHED = make_schedule("linear")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def moons():
    return data.make_dataset("moons", 400, seed=0)


@pytest.mark.parametrize("name", list(race.SCHEDULERS))
@pytest.mark.parametrize("steps", [3, 8])
def test_evaluation_counts_match_each_scheduler_and_outputs_are_finite(name, steps, moons):
    calls = []
    exact = race.exact_particle_model(SCHED, moons)

    def counted(fn):
        def f(x, t):
            calls.append(float(t[0]))
            return fn(x, t)

        return f

    model = race.RaceModel(eps=counted(exact.eps), velocity=counted(exact.velocity))
    run = race.run_one(name, steps, model, SCHED, paths.start_noise(64, 1), clip_sample=False)
    assert run.evaluations == len(calls) == race.expected_evaluations(name, steps)
    if "Heun" in name:
        assert run.evaluations == 2 * steps - 1
    assert torch.isfinite(run.final).all() and torch.isfinite(run.path).all()
    assert run.path.shape == (steps + 1, 64, 2)  # a state per step, then the final sample
    assert 0 < run.straightness <= 1 + 1e-6


def test_a_fresh_scheduler_per_run_gives_the_same_result_twice(moons):
    model = race.exact_particle_model(SCHED, moons)
    noise = paths.start_noise(64, 2)
    for name in ("DPM-Solver++", "UniPC", "DDPM"):  # multistep schedulers keep history; DDPM draws noise
        a = race.run_one(name, 6, model, SCHED, noise, seed=3, clip_sample=False)
        b = race.run_one(name, 6, model, SCHED, noise, seed=3, clip_sample=False)
        assert torch.equal(a.final, b.final)


def test_flow_matching_at_8_steps_beats_eps_euler_at_8_steps(moons):
    model = race.exact_particle_model(SCHED, moons)
    noise = paths.start_noise(600, seed=0)
    ref = moons
    fm = race.run_one("FlowMatch Euler", 8, model, SCHED, noise, clip_sample=False)
    eu = race.run_one("Euler", 8, model, SCHED, noise, clip_sample=False)
    assert metrics.mmd(fm.final, ref) < metrics.mmd(eu.final, ref)


def test_clip_sample_is_the_schedules_unless_the_race_turns_it_off():
    assert race.make_scheduler("DDIM", SCHED).config.clip_sample is True  # the Fashion generator's convention
    assert race.make_scheduler("DDPM", SCHED, clip_sample=False).config.clip_sample is False
    ddim = race.make_scheduler("DDIM", SCHED)
    ddim.set_timesteps(8)
    assert int(ddim.timesteps[0]) == 999  # trailing spacing: the first step starts from pure noise


def test_unknown_scheduler_is_refused():
    model = race.exact_particle_model(SCHED, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="unknown scheduler"):
        list(race.race(model, SCHED, torch.zeros(2, 2), ["Nope"], [4]))


def test_eps_network_runs_every_scheduler_on_images():
    """An image-shaped eps-network (the oracle for one fixed picture) through every scheduler: finite, and the ODE
    schedulers land on the picture."""
    x0 = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    from model.diffusion.schedule import alpha_bar_at

    def eps_fn(x_t, t):
        ab = alpha_bar_at(SCHED, t).reshape(-1, 1, 1, 1)
        return ((x_t.double() - ab.sqrt() * x0) / (1 - ab).sqrt()).float()

    model = race.eps_network_model(SCHED, eps_fn)
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for name in race.SCHEDULERS:
        run = race.run_one(name, 6, model, SCHED, noise)
        assert torch.isfinite(run.final).all()
        if name not in race.STOCHASTIC:
            # (float32 rounding divided by sqrt(alpha_bar_999) = 0.0064 at the first step leaves a few 1e-2)
            assert (run.final - x0).abs().max() < 5e-2, name
