"""Is Heun broken in the race, or is it Heun? Our race loop against diffusers' own sampling loop on the same network
and the same scheduler config (issue 36, item 2).

* The Fashion generator (the bundled UNet): every eps scheduler of the race lands where diffusers' own loop lands,
  with the scheduler built by diffusers' ``from_config`` from the model's own ``scheduler_config.json``. Heun did not:
  the race built it without the model's ``clip_sample``, and its 4-step pictures were speckled (values far outside
  [-1, 1]).
* The particles (the exact denoiser): both loops agree too, and Heun's overshoot at few steps is Heun's own: its
  last corrected step ends at sigma = 0.01 and multiplies the jump of x0_hat between its two evaluations by
  (s_0 - s_1) / (2 s_1) (:func:`model.particles.race.heun_last_check`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.diffusion.schedule import make_schedule, schedule_from_config
from model.particles import data, paths, race

FASHION = Path(__file__).resolve().parents[4] / "checkpoints" / "fashion-unet"
LABEL = 7  # Sneaker
EPS_SCHEDULERS = [n for n, (_, kind, _) in race.SCHEDULERS.items() if kind == "eps" and n not in race.STOCHASTIC]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def diffusers_loop(scheduler, num_steps: int, noise: torch.Tensor, eps_fn) -> torch.Tensor:
    """diffusers' own sampling loop (as in its pipelines): scale the noise, then scale_model_input, the network, step."""
    scheduler.set_timesteps(num_steps)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(eps_fn(scheduler.scale_model_input(x, t), t), t, x).prev_sample
    return x


@pytest.fixture(scope="module")
def fashion():
    """The bundled Fashion UNet as diffusers loads it, its scheduler config, and its schedule."""
    import diffusers

    unet = diffusers.UNet2DModel.from_pretrained(FASHION).eval()
    config = json.loads((FASHION / "scheduler_config.json").read_text())

    @torch.inference_mode()
    def eps_fn(x, t):
        t = torch.as_tensor(t).reshape(-1).expand(x.shape[0])
        return unet(x, t, class_labels=torch.full((x.shape[0],), LABEL)).sample

    return unet, config, schedule_from_config(config), eps_fn


@pytest.mark.parametrize("name", EPS_SCHEDULERS)
def test_the_race_loop_is_diffusers_own_loop_on_the_fashion_generator(fashion, name):
    import diffusers

    _, config, schedule, eps_fn = fashion
    cls_name, _, extra = race.SCHEDULERS[name]
    noise = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    theirs = diffusers_loop(getattr(diffusers, cls_name).from_config(config, **extra), 4, noise, eps_fn)
    ours = race.run_one(name, 4, race.eps_network_model(schedule, eps_fn), schedule, noise).final
    # 4 steps: every timestep is a whole number, so the same network calls; float32 rounding only
    assert (ours - theirs).abs().max() < 5e-3, name


def test_heun_and_flowmatch_heun_pictures_stay_in_the_pixel_range_at_4_steps(fashion):
    """The speckles: unclipped, Heun's 4-step pictures reached |x| = 27 and FlowMatch Heun's 9.7 (pixels are in
    [-1, 1]); with the model's clip_sample on x0_hat they stay in range."""
    _, _, schedule, eps_fn = fashion
    model = race.eps_network_model(schedule, eps_fn)
    noise = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in ("Heun", "FlowMatch Heun"):
        final = race.run_one(name, 4, model, schedule, noise).final
        assert final.abs().max() <= 1.05, (name, float(final.abs().max()))


def test_clip_sample_reaches_every_scheduler_that_has_it():
    sched = make_schedule("linear")
    assert race.make_scheduler("Heun", sched).config.clip_sample is True
    assert race.make_scheduler("Heun", sched, clip_sample=False).config.clip_sample is False
    assert race.make_scheduler("DDIM", sched).config.timestep_spacing == "trailing"  # the race's own setting wins


def test_on_particles_the_race_loop_is_diffusers_loop_and_heuns_overshoot_is_heuns_own():
    import diffusers

    sched = make_schedule("linear")
    pts = data.make_dataset("moons", 300, 0)
    model = race.exact_particle_model(sched, pts)
    noise = paths.start_noise(300, 1)
    scheduler = diffusers.HeunDiscreteScheduler.from_config(
        {**sched.to_scheduler_config(), "clip_sample": False}
    )  # fmt: skip
    theirs = diffusers_loop(scheduler, 4, noise, lambda x, t: model.eps(x, torch.full((x.shape[0],), float(t))))
    run = race.run_one("Heun", 4, model, sched, noise, clip_sample=False)
    assert torch.allclose(run.final, theirs, atol=1e-5)
    sigma, gain = race.heun_last_check("Heun", 4, sched)
    assert sigma == pytest.approx(0.01, rel=1e-3)
    assert gain == pytest.approx((sched.alpha_bar_floats[333] ** -1 - 1) ** 0.5 / (2 * sigma) - 0.5, rel=1e-3)
    assert run.path.abs().max() > 3  # the overshoot the page explains
    assert race.heun_last_check("Heun", 16, sched)[1] < gain / 5
    assert race.heun_last_check("FlowMatch Heun", 4, sched)[0] == pytest.approx(1e-3, rel=1e-3)
