"""Math layer: our readable formulas agree with diffusers' DDPMScheduler and DDIMScheduler."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from model.diffusion.forward import q_sample
from model.diffusion.reverse import ddim_step, ddpm_step, predict_x0
from model.diffusion.schedule import make_schedule

SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
TS = [0, 1, 17, 250, 500, 901, 999]
TOL = dict(rtol=1e-5, atol=1e-5)


def _reference(cls, name: str, **kw):
    """A diffusers scheduler whose alpha arrays are recomputed in float64 from its own betas.

    diffusers keeps betas and their cumulative product in float32. Near t = 1 the posterior
    variance (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t then loses about 4 digits to
    cancellation (1 - 0.9999 in float32), which alone moves prev_sample by ~5e-5. We build our
    schedule in float64 on purpose; so that this comparison checks the step *formulas* at 1e-5,
    the reference gets the same float64 arrays, derived from its own betas. (The float32 arrays
    themselves are compared with ours in test_schedule_forward.py.)
    """
    ref = cls(num_train_timesteps=1000, beta_schedule=SCHEDULES[name], **kw)
    if name == "linear":
        betas = torch.linspace(ref.config.beta_start, ref.config.beta_end, 1000, dtype=torch.float64)
    else:
        betas = ref.betas.double()
    ref.betas = betas
    ref.alphas = 1.0 - betas
    ref.alphas_cumprod = torch.cumprod(ref.alphas, dim=0)
    return ref


def _tensors(seed: int):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand((2, 3, 8, 8), generator=g) * 2 - 1
    eps = torch.randn((2, 3, 8, 8), generator=g)
    eps_hat = eps + 0.1 * torch.randn((2, 3, 8, 8), generator=g)  # an imperfect "network"
    return x0, eps, eps_hat


@pytest.mark.parametrize("name", SCHEDULES)
def test_add_noise_matches(name):
    ours = make_schedule(name)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=SCHEDULES[name])
    x0, eps, _ = _tensors(0)
    for t in TS:
        x_t, _ = q_sample(ours, x0, t, noise=eps)
        expect = ref.add_noise(x0, eps, torch.full((2,), t, dtype=torch.long))
        torch.testing.assert_close(x_t, expect, **TOL)


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_ddpm_step_matches(name, variance_type, clip):
    ours = make_schedule(name, variance_type=variance_type, clip_sample=clip)
    ref = _reference(DDPMScheduler, name, variance_type=variance_type, clip_sample=clip)
    x0, eps, eps_hat = _tensors(1)
    # Unclipped cosine at t = 999 (beta capped at 0.999, alpha_bar ~ 1e-9) gives |x0_hat| ~ 1e4;
    # the step then cancels large float32 terms and neither side is accurate to 1e-5 there.
    ts = TS if clip or name == "linear" else [t for t in TS if t < 999]
    for t in ts:
        x_t, _ = q_sample(ours, x0, t, noise=eps)
        got = ddpm_step(ours, eps_hat, t, x_t, generator=torch.Generator().manual_seed(t))
        exp = ref.step(eps_hat, t, x_t, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(got.x0_hat, exp.pred_original_sample, **TOL)
        torch.testing.assert_close(got.prev_sample, exp.prev_sample, **TOL)


@pytest.mark.parametrize("name", SCHEDULES)
def test_strided_ddpm_step_matches(name):
    """With 50 inference steps, diffusers jumps t -> t - 20; so does ddpm_step(t_prev=...)."""
    ours = make_schedule(name, clip_sample=False)
    ref = _reference(DDPMScheduler, name, clip_sample=False)
    ref.set_timesteps(50)
    x0, eps, eps_hat = _tensors(2)
    for t in [int(v) for v in ref.timesteps[::7]]:
        x_t, _ = q_sample(ours, x0, t, noise=eps)
        got = ddpm_step(ours, eps_hat, t, x_t, generator=torch.Generator().manual_seed(t), t_prev=t - 20)
        exp = ref.step(eps_hat, t, x_t, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(got.prev_sample, exp.prev_sample, **TOL)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("name", SCHEDULES)
def test_ddim_step_matches(name, clip, eta):
    ours = make_schedule(name, clip_sample=clip)
    ref = _reference(DDIMScheduler, name, clip_sample=clip)
    ref.set_timesteps(50)
    x0, eps, eps_hat = _tensors(3)
    for t in [int(v) for v in ref.timesteps]:
        x_t, _ = q_sample(ours, x0, t, noise=eps)
        t_prev = t - 20 if t - 20 >= 0 else -1
        got = ddim_step(ours, eps_hat, t, x_t, t_prev, eta=eta, generator=torch.Generator().manual_seed(t))
        exp = ref.step(eps_hat, t, x_t, eta=eta, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(got.x0_hat, exp.pred_original_sample, **TOL)
        torch.testing.assert_close(got.prev_sample, exp.prev_sample, **TOL)


def test_x0_hat_is_exact_with_the_true_noise():
    s = make_schedule("linear")
    x0, eps, _ = _tensors(4)
    for t in TS:
        x_t, _ = q_sample(s, x0.double(), t, noise=eps.double())
        torch.testing.assert_close(predict_x0(s, x_t, eps.double(), t), x0.double(), rtol=0, atol=1e-9)
