"""Math layer: the fixes from the independent audit of the math (issue 19, item 7), each checked
against diffusers' own schedulers.

* x0_hat of v- and sample-predicting networks is computed straight from the output;
* DDIM's ``set_alpha_to_one=False`` is honoured; other scheduler-config keys that would change
  the math (``rescale_betas_zero_snr``, ``thresholding``, learned variances, ``trailing``
  spacing) are refused with a sentence naming the key;
* ``ddpm_step`` adds no noise exactly on the step to the clean image (t_prev = -1);
* cross-checks for ``v_prediction``, ``sample``, ``scaled_linear`` and ``trained_betas``.
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from model.diffusion.forward import q_sample
from model.diffusion.reverse import (
    ddim_step,
    ddpm_step,
    output_to_eps,
    output_to_x0,
    predict_x0,
    q_posterior,
    training_target,
)
from model.diffusion.schedule import make_schedule, schedule_from_config
from model.diffusion.trajectory import sample_trajectory
from model.nets.checkpoint_io import ModelLoadError, save_model, tiny_unet
from model.nets.network import load_local

TOL = dict(rtol=1e-5, atol=1e-5)
TRAINED = torch.linspace(2e-4, 0.03, 1000, dtype=torch.float64) ** 1.1  # an arbitrary monotone beta list
# diffusers config for each beta schedule we cross-check
BETAS = {
    "linear": {"beta_schedule": "linear"},
    "cosine": {"beta_schedule": "squaredcos_cap_v2"},
    "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    "trained": {"trained_betas": TRAINED.tolist()},
}


def _pair(cls, betas: str, **kw):
    """(our schedule, diffusers scheduler) from the same diffusers config.

    Our schedule is built by ``schedule_from_config`` from the reference's own config. The
    reference's alpha arrays are then recomputed in float64 from our betas, so that the step
    comparisons check the step *formulas* at 1e-5 (see test_crosscheck_diffusers._reference);
    the float32 arrays themselves are compared in :func:`test_schedule_arrays_match`.
    """
    ref = cls(num_train_timesteps=1000, **BETAS[betas], **kw)
    ours = schedule_from_config(dict(ref.config))
    ref.betas = ours.betas.clone()
    ref.alphas = 1.0 - ref.betas
    ref.alphas_cumprod = torch.cumprod(ref.alphas, dim=0)
    if hasattr(ref, "final_alpha_cumprod") and not ref.config.set_alpha_to_one:
        ref.final_alpha_cumprod = ref.alphas_cumprod[0]
    return ours, ref


def _tensors(seed: int, shape=(2, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g) * 2 - 1
    eps = torch.randn(shape, generator=g)
    out = torch.randn(shape, generator=g)  # a "network output" (eps, v or x0 depending on the type)
    return x0, eps, out


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("betas", ["scaled_linear", "trained"])
def test_schedule_arrays_match(betas):
    """alpha_bar of scaled_linear and trained_betas configs equals diffusers' (float32) to 1e-6."""
    ref = DDPMScheduler(num_train_timesteps=1000, **BETAS[betas])
    ours = schedule_from_config(dict(ref.config))
    assert ours.name == ("trained" if betas == "trained" else "scaled_linear")
    torch.testing.assert_close(ours.alpha_bar.float(), ref.alphas_cumprod, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.betas.float(), ref.betas, rtol=0, atol=1e-7)


# --------------------------------------------------------------------------- steps per prediction type


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("betas", ["linear", "cosine", "scaled_linear", "trained"])
def test_ddpm_step_matches_per_prediction_type(betas, prediction_type):
    ours, ref = _pair(DDPMScheduler, betas, prediction_type=prediction_type, clip_sample=False)
    x0, eps, out = _tensors(5)
    # eq. 15 divides by sqrt(alpha_bar) ~ 3e-5 at the cosine's t = 999: only v and sample are exact there
    last = 999 if prediction_type != "epsilon" or betas != "cosine" else 998
    for t in [0, 1, 17, 250, 500, 901, last]:
        x_t, _ = q_sample(ours, x0, t, noise=eps)
        eps_hat, x0_hat = output_to_eps(ours, out, x_t, t), output_to_x0(ours, out, x_t, t)
        got = ddpm_step(ours, eps_hat, t, x_t, torch.Generator().manual_seed(t), x0_hat=x0_hat)
        exp = ref.step(out, t, x_t, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(got.x0_hat, exp.pred_original_sample, **TOL)
        torch.testing.assert_close(got.prev_sample, exp.prev_sample, **TOL)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
@pytest.mark.parametrize("betas", ["linear", "cosine", "scaled_linear", "trained"])
def test_ddim_step_matches_per_prediction_type(betas, prediction_type):
    ours, ref = _pair(DDIMScheduler, betas, prediction_type=prediction_type, clip_sample=False)
    ref.set_timesteps(50)
    x0, eps, out = _tensors(6)
    for t in [int(v) for v in ref.timesteps]:
        x_t, _ = q_sample(ours, x0, t, noise=eps)
        t_prev = t - 20 if t >= 20 else -1
        eps_hat, x0_hat = output_to_eps(ours, out, x_t, t), output_to_x0(ours, out, x_t, t)
        got = ddim_step(ours, eps_hat, t, x_t, t_prev, x0_hat=x0_hat)
        exp = ref.step(out, t, x_t, eta=0.0)
        torch.testing.assert_close(got.x0_hat, exp.pred_original_sample, **TOL)
        torch.testing.assert_close(got.prev_sample, exp.prev_sample, **TOL)


# --------------------------------------------------------------------------- x0_hat straight from the output


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_x0_hat_is_direct_at_the_last_t_with_cosine(prediction_type):
    """At t = T-1 (cosine: alpha_bar ~ 1e-9) x0_hat agrees with diffusers' float32 step to 1e-6;
    the old round trip through eps_hat was off by ~1e-3 there."""
    ref = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type, clip_sample=False)
    ours = schedule_from_config(dict(ref.config))
    t = ours.T - 1
    x0, eps, out = _tensors(7, (4, 3, 16, 16))
    x_t, _ = q_sample(ours, x0, t, noise=eps)
    exp = ref.step(out, t, x_t, generator=torch.Generator().manual_seed(0)).pred_original_sample
    direct = output_to_x0(ours, out, x_t, t)
    assert float((direct - exp).abs().max()) < 1e-6
    round_trip = predict_x0(ours, x_t, output_to_eps(ours, out, x_t, t), t)
    assert float((round_trip - exp).abs().max()) > 1e-4  # what the fix removes
    # a trajectory fed (eps_hat, x0_hat), as LoadedModel.predict returns them, uses the direct x0_hat
    rec = next(
        sample_trajectory(
            lambda x, tt: (output_to_eps(ours, out, x, tt), output_to_x0(ours, out, x, tt)),
            ours,
            x_t,
            [t, t - 1],
            "ddpm",
            generator=torch.Generator().manual_seed(0),
        )
    )
    assert float((rec.x0_hat - exp).abs().max()) < 1e-6


def test_batched_t_matches_per_row_ints():
    """Every formula takes a (B,) tensor of t and gives, row by row, what the int t gives."""
    s = make_schedule("cosine", prediction_type="v_prediction")
    x0, eps, out = _tensors(8, (4, 3, 8, 8))
    t = torch.tensor([0, 5, 500, 999])
    x_t, _ = q_sample(s, x0, t, noise=eps)
    for fn in (output_to_eps, output_to_x0):
        batched = fn(s, out, x_t, t)
        for i, ti in enumerate(t.tolist()):
            torch.testing.assert_close(batched[i : i + 1], fn(s, out[i : i + 1], x_t[i : i + 1], ti), **TOL)
    v = training_target(s, x0, eps, t)
    torch.testing.assert_close(output_to_x0(s, v, x_t, t), x0, rtol=0, atol=1e-4)
    mean, var, logvar = q_posterior(s, x0, x_t, t)
    for i, ti in enumerate(t.tolist()):
        m1, v1, lv1 = q_posterior(s, x0[i : i + 1], x_t[i : i + 1], ti)
        torch.testing.assert_close(mean[i : i + 1], m1, **TOL)
        assert abs(float(var[i]) - v1) < 1e-7 and abs(float(logvar[i]) - lv1) < 1e-5


# --------------------------------------------------------------------------- scheduler-config keys


def test_set_alpha_to_one_false_matches_ddim():
    """DDIMScheduler(set_alpha_to_one=False): the last step lands on alpha_bar_0, not 1."""
    ours, ref = _pair(DDIMScheduler, "linear", set_alpha_to_one=False, clip_sample=False)
    assert ours.set_alpha_to_one is False
    assert schedule_from_config(ours.to_scheduler_config()).set_alpha_to_one is False
    ref.set_timesteps(50)
    x0, eps, eps_hat = _tensors(9)
    x_t, _ = q_sample(ours, x0, 0, noise=eps)
    got = ddim_step(ours, eps_hat, 0, x_t, -1)
    exp = ref.step(eps_hat, 0, x_t, eta=0.0)
    torch.testing.assert_close(got.prev_sample, exp.prev_sample, **TOL)
    ignored = ddim_step(make_schedule("linear", clip_sample=False), eps_hat, 0, x_t, -1)
    assert float((ignored.prev_sample - exp.prev_sample).abs().max()) > 1e-3  # the size of the old error


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("rescale_betas_zero_snr", True),
        ("thresholding", True),
        ("variance_type", "learned_range"),
        ("variance_type", "learned"),
        ("timestep_spacing", "trailing"),
    ],
)
def test_unsupported_keys_are_refused(key, value, tmp_path):
    """A diffusers config with a key we do not implement is refused with a sentence naming it, also at load."""
    config = dict(DDPMScheduler(num_train_timesteps=1000, **{key: value}).config)
    with pytest.raises(ValueError, match=key if key != "variance_type" else str(value)):
        schedule_from_config(config)
    folder = save_model(tiny_unet(), make_schedule("linear"), tmp_path / "m")
    (folder / "scheduler_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=key if key != "variance_type" else str(value)):
        load_local(folder, device="cpu")


def test_ddpm_step_refuses_a_learned_variance_it_is_not_given():
    s = make_schedule("linear", variance_type="learned_range")
    x0, eps, eps_hat = _tensors(11)
    with pytest.raises(ValueError, match="learned_range"):
        ddpm_step(s, eps_hat, 5, x0, torch.Generator().manual_seed(0))


def test_default_keys_are_accepted():
    for cls in (DDPMScheduler, DDIMScheduler):
        s = schedule_from_config(dict(cls(num_train_timesteps=1000, timestep_spacing="leading").config))
        assert s.T == 1000 and s.set_alpha_to_one is True


# --------------------------------------------------------------------------- ddpm_step's last step


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_ddpm_step_adds_no_noise_exactly_on_the_step_to_the_clean_image(variance_type):
    s = make_schedule("linear", variance_type=variance_type, clip_sample=False)
    x0, eps, eps_hat = _tensors(10)
    for t in (0, 7):  # t = 7 -> -1: a trajectory whose timesteps do not end at 0
        x_t, _ = q_sample(s, x0, t, noise=eps)
        g = torch.Generator().manual_seed(1)
        state = g.get_state()
        a = ddpm_step(s, eps_hat, t, x_t, g, t_prev=-1).prev_sample
        assert torch.equal(g.get_state(), state)  # no noise drawn
        torch.testing.assert_close(
            a, ddpm_step(s, eps_hat, t, x_t, torch.Generator().manual_seed(2), t_prev=-1).prev_sample
        )
    # and on every other step noise is drawn, as diffusers' DDPMScheduler.step does for t > 0
    x_t, _ = q_sample(s, x0, 1, noise=eps)
    ref = DDPMScheduler(num_train_timesteps=1000, variance_type=variance_type, clip_sample=False)
    got = ddpm_step(s, eps_hat, 1, x_t, torch.Generator().manual_seed(3)).prev_sample
    exp = ref.step(eps_hat, 1, x_t, generator=torch.Generator().manual_seed(3)).prev_sample
    torch.testing.assert_close(got, exp, rtol=1e-4, atol=1e-4)
