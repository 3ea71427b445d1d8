"""Math layer: the variational bound, the simple loss, their weights and the training step.

Closed-form fake models on tiny tensors; the tiny random UNet only where a real network
is the point (the estimator on a network, the training step, the command line).
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import ROOT

from model.cli import likelihood as likelihood_cli
from model.diffusion import likelihood as lk
from model.diffusion import vlb_terms
from model.diffusion.reverse import q_posterior
from model.diffusion.schedule import gather, make_schedule

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention
LIN = make_schedule("linear")


def _x0(size: int = 8, seed: int = 0) -> torch.Tensor:
    """(1, 3, size, size) in [-1, 1], touching both ends so the edge bins are used."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((1, 3, size, size), generator=g) * 2 - 1
    x[0, 0, 0, 0], x[0, 1, 0, 0] = -1.0, 1.0
    return x


def oracle(schedule, x0):
    """A batched eps-model that knows x_0: eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t), any t per row."""
    x0q = lk.quantize_8bit(x0.double())

    def model(x_t, t):
        ab = gather(schedule.alpha_bar, t, 4, torch.float64)
        return ((x_t.double() - ab.sqrt() * x0q) / (1 - ab).sqrt()).float()

    return model


def shrink(x_t, t):
    """A closed-form, imperfect eps-model: 0.1 * x_t."""
    return 0.1 * x_t


# ---------------------------------------------------------------------------------- building blocks


def test_normal_kl_identical_is_zero_and_closed_form():
    m = torch.randn(5, dtype=torch.float64)
    lv = torch.randn(5, dtype=torch.float64)
    assert torch.allclose(vlb_terms.normal_kl(m, lv, m, lv), torch.zeros(5, dtype=torch.float64), atol=1e-15)
    # KL(N(1, 1) || N(0, 4)) = 1/2 (log 4 - 1 + 1/4 + 1/4)
    kl = vlb_terms.normal_kl(torch.tensor(1.0, dtype=torch.float64), 0.0, 0.0, math.log(4.0))
    assert float(kl) == pytest.approx(0.5 * (math.log(4.0) - 0.5), rel=1e-12)
    # agrees with torch.distributions for random Gaussians
    m2, lv2 = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m, (0.5 * lv).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    assert torch.allclose(vlb_terms.normal_kl(m, lv, m2, lv2), ref, atol=1e-12)
    assert bool((vlb_terms.normal_kl(m, lv, m2, lv2) >= 0).all())


@pytest.mark.parametrize("mean,scale", [(0.1, 0.05), (-0.98, 0.01), (1.3, 0.3), (0.0, 0.004), (0.5, 2.0)])
def test_decoder_bin_probabilities_sum_to_one(mean, scale):
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1.0
    logp = vlb_terms.discretized_gaussian_log_likelihood(
        levels, torch.tensor(mean, dtype=torch.float64), torch.tensor(math.log(scale), dtype=torch.float64)
    )
    assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    assert bool((logp <= 0).all())


def test_decoder_matches_the_exact_gaussian_bin_probability():
    x = torch.tensor([0.2], dtype=torch.float64)
    mean, scale = torch.tensor(0.21, dtype=torch.float64), 0.02
    exact = torch.distributions.Normal(mean, scale)
    p = exact.cdf(x + 1 / 255) - exact.cdf(x - 1 / 255)
    got = vlb_terms.discretized_gaussian_log_likelihood(
        x, mean, torch.tensor(math.log(scale), dtype=torch.float64)
    ).exp()
    assert float(got) == pytest.approx(float(p), abs=2e-3)  # tanh approximation of Phi


def test_quantize_8bit_hits_the_256_level_grid():
    x = torch.linspace(-1.2, 1.2, 1001)
    q = lk.quantize_8bit(x)
    k = (q + 1) * 127.5
    assert torch.allclose(k, k.round(), atol=1e-4) and float(q.min()) == -1.0 and float(q.max()) == 1.0
    assert float((q - x.clamp(-1, 1)).abs().max()) <= 1 / 255 + 1e-6


def test_model_log_variance_follows_improved_diffusion():
    small = vlb_terms.model_log_variance(LIN)
    assert torch.equal(small, LIN.posterior_log_variance_clipped)
    assert float(small[0]) == pytest.approx(math.log(float(LIN.posterior_variance[1])))
    large = vlb_terms.model_log_variance(make_schedule("linear", variance_type="fixed_large"))
    assert float(large[0]) == pytest.approx(math.log(float(LIN.posterior_variance[1])))
    assert torch.allclose(large[1:], LIN.betas[1:].log())
    with pytest.raises(ValueError, match="variance_type"):
        vlb_terms.model_log_variance(make_schedule("linear", variance_type="learned_range"))


# ---------------------------------------------------------------------------------- the terms


def test_term_matches_an_independent_computation():
    """One KL term by hand with model.diffusion.reverse.q_posterior and torch.distributions."""
    x0 = lk.quantize_8bit(_x0().double())
    t = 400
    g = torch.Generator().manual_seed(3)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_t = LIN.sqrt_alpha_bar[t] * x0 + LIN.sqrt_one_minus_alpha_bar[t] * eps
    eps_hat = 0.9 * eps + 0.05
    x0_hat = ((x_t - LIN.sqrt_one_minus_alpha_bar[t] * eps_hat) / LIN.sqrt_alpha_bar[t]).clamp(-1, 1)
    mu, var, _ = q_posterior(LIN, x0, x_t, t)
    mu_theta, _, _ = q_posterior(LIN, x0_hat, x_t, t)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, var**0.5), torch.distributions.Normal(mu_theta, var**0.5)
    ).mean() / math.log(2)
    got = vlb_terms.vb_terms_bpd(LIN, x0, x_t, eps_hat, torch.tensor([t]))
    assert float(got[0]) == pytest.approx(float(kl), rel=1e-9)


def test_default_batch_size_scales_with_pixels():
    assert vlb_terms.default_batch_size(64) == 50
    assert vlb_terms.default_batch_size(256) == 3 and vlb_terms.default_batch_size(32) == 100


def test_total_is_prior_plus_sum_of_terms_and_batching_does_not_matter():
    x0 = _x0()
    a = lk.vb_terms(shrink, LIN, x0, None, torch.Generator().manual_seed(1), batch_size=1000)
    b = lk.vb_terms(shrink, LIN, x0, None, torch.Generator().manual_seed(1), batch_size=37)
    assert a.timesteps.tolist() == list(range(999, -1, -1))  # every index once, as calc_bpd_loop
    assert torch.equal(a.terms_bpd, b.terms_bpd)
    assert a.total_bpd == pytest.approx(float(a.terms_bpd.sum()) + a.prior_bpd, rel=1e-12)
    # L_0 (index 0) is the decoder; the prior is tiny but positive for the linear schedule
    assert 0 < a.prior_bpd < 1e-4
    dec = a.terms_bpd[a.timesteps == 0]
    assert float(dec) > 0
    # same seed, same numbers; another seed, other numbers
    c = lk.vb_terms(shrink, LIN, x0, None, torch.Generator().manual_seed(2))
    assert not torch.equal(a.terms_bpd, c.terms_bpd)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_oracle_makes_the_middle_terms_vanish(name):
    sched = make_schedule(name)
    x0 = _x0()
    ts = list(range(1, sched.T))
    res = lk.vb_terms(oracle(sched, x0), sched, x0, ts, torch.Generator().manual_seed(0), batch_size=250)
    assert float(res.terms_bpd.abs().max()) < 1e-6
    assert float(res.eps_mse.max()) < 1e-8
    # the decoder still costs bits: its Gaussian has a width of about sqrt(beta_tilde_1)
    dec = lk.vb_terms(oracle(sched, x0), sched, x0, [0], torch.Generator().manual_seed(0))
    assert 0.1 < float(dec.terms_bpd[0]) < 8


def test_oracle_with_fixed_large_leaves_only_the_variance_mismatch():
    sched = make_schedule("linear", variance_type="fixed_large")
    x0 = _x0()
    ts = [1, 10, 300, 999]
    res = lk.vb_terms(oracle(sched, x0), sched, x0, ts, torch.Generator().manual_seed(0))
    const = lk.loss_weights(sched).vlb_const[ts] / math.log(2)
    assert torch.allclose(res.terms_bpd, const, rtol=1e-5, atol=1e-9)
    assert bool((const > 0).all())


# ---------------------------------------------------------------------------------- weights


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_vlb_term_is_weighted_eps_mse(variance_type):
    """Without clipping, L_t = lambda_t * eps-MSE + const_t exactly (Ho et al. eq. 12)."""
    sched = make_schedule("linear", variance_type=variance_type)
    x0 = _x0()
    ts = [1, 5, 50, 500, 999]
    res = lk.vb_terms(shrink, sched, x0, ts, torch.Generator().manual_seed(4), clip_denoised=False)
    w = lk.loss_weights(sched)
    predicted = (w.vlb[ts] * res.eps_mse + w.vlb_const[ts]) / math.log(2)
    assert torch.allclose(res.terms_bpd, predicted, rtol=1e-5)


def test_weights_closed_form_and_which_t_the_simple_loss_favours():
    w = lk.loss_weights(LIN)
    t = torch.arange(1, 1000)
    expected = LIN.betas[t] / (2 * LIN.alphas[t] * (1 - LIN.alpha_bar[t - 1]))  # fixed_small simplification
    assert torch.allclose(w.vlb[t], expected, rtol=1e-10)
    assert torch.equal(w.simple, torch.ones(1000, dtype=torch.float64))
    assert torch.allclose(w.vlb_const, torch.zeros(1000, dtype=torch.float64), atol=1e-12)
    # the VLB weight falls with t, so the flat simple loss favours large t relative to it
    assert float(w.vlb[1]) > 50 * float(w.vlb[999])
    vlb_n, simple_n = w.normalised()
    assert float(vlb_n.mean()) == pytest.approx(1.0) and float(simple_n.mean()) == pytest.approx(1.0)
    assert float(simple_n[999] / vlb_n[999]) > 1 > float(simple_n[1] / vlb_n[1])


# ---------------------------------------------------------------------------------- estimator


@pytest.mark.parametrize("proposal", lk.PROPOSALS)
def test_sampled_estimate_is_unbiased(proposal):
    """Mean of many N-sample estimates agrees with the full sum within a few standard errors."""
    x0 = _x0(4)
    full = lk.vb_terms(shrink, LIN, x0, None, torch.Generator().manual_seed(0)).total_bpd
    ests = torch.tensor(
        [
            lk.estimate_bpd(shrink, LIN, x0, 20, torch.Generator().manual_seed(s), proposal=proposal).total_bpd
            for s in range(150)
        ],
        dtype=torch.float64,
    )
    se = float(ests.std()) / math.sqrt(len(ests))
    assert abs(float(ests.mean()) - full) < 4 * se + 1e-3 * full


def test_estimate_on_a_tiny_network_is_close_to_all_terms(tiny_model_dir):
    from model.nets.network import load_model

    m = load_model(tiny_model_dir)
    sched = make_schedule("linear", T=100)  # short chain: keeps the test fast
    x0 = _x0(16)
    full = lk.vb_terms(m.eps, sched, x0, None, torch.Generator().manual_seed(0), batch_size=100)
    est = lk.estimate_bpd(m.eps, sched, x0, 40, torch.Generator().manual_seed(1), proposal="importance")
    assert est.stderr > 0
    assert abs(est.total_bpd - full.total_bpd) < 4 * est.stderr
    assert est.decoder_bpd == pytest.approx(float(full.terms_bpd[-1]), rel=0.05)
    assert est.terms.timesteps[-1] == 0 and len(est.terms.timesteps) == 41


def test_a_decoder_generator_gives_l0_one_draw_whatever_comes_with_it():
    """Issue 26: the estimate and all terms drew x_1 at different points of one stream, so L_0 differed. With its
    own generator, L_0 is one number; the other terms still draw from ``generator`` in their order."""
    x0 = _x0(5)
    full_a = lk.vb_terms(shrink, LIN, x0, None, torch.Generator().manual_seed(0))
    full_b = lk.vb_terms(
        shrink, LIN, x0, None, torch.Generator().manual_seed(0), decoder_generator=torch.Generator().manual_seed(9)
    )
    est_a = lk.estimate_bpd(shrink, LIN, x0, 8, torch.Generator().manual_seed(1))
    est_b = lk.estimate_bpd(
        shrink, LIN, x0, 8, torch.Generator().manual_seed(1), decoder_generator=torch.Generator().manual_seed(9)
    )
    assert est_a.decoder_bpd != float(full_a.terms_bpd[-1])  # one stream: two draws of x_1
    assert est_b.decoder_bpd == float(full_b.terms_bpd[-1])  # its own generator: one draw
    alone = lk.vb_terms(
        shrink, LIN, x0, [0], torch.Generator().manual_seed(5), decoder_generator=torch.Generator().manual_seed(9)
    )
    assert float(alone.terms_bpd[0]) == est_b.decoder_bpd
    # the KL terms are unchanged where the decoder's draw came last anyway (all terms run T-1 .. 0)
    torch.testing.assert_close(full_a.terms_bpd[:-1], full_b.terms_bpd[:-1])


# ---------------------------------------------------------------------------------- simple loss


def test_simple_loss_per_t_oracle_zero_model_and_spread():
    x0 = _x0()
    ts = [0, 10, 500, 999]
    perfect = lk.simple_loss_per_t(oracle(LIN, x0), LIN, x0, ts, 3, torch.Generator().manual_seed(0))
    assert float(perfect.mean.max()) < 1e-8
    zero = lk.simple_loss_per_t(lambda x, t: torch.zeros_like(x), LIN, x0, ts, 5, torch.Generator().manual_seed(0))
    assert zero.values.shape == (5, 4) and zero.timesteps.tolist() == ts
    assert torch.allclose(zero.mean, torch.ones(4, dtype=torch.float64), atol=0.2)  # E|eps|^2 = 1
    assert bool((zero.std > 0).all())
    one = lk.simple_loss_per_t(shrink, LIN, x0, ts, 1, torch.Generator().manual_seed(0))
    assert torch.equal(one.std, torch.zeros(4, dtype=torch.float64))


# ---------------------------------------------------------------------------------- training step


def test_training_step_leaves_the_shared_model_untouched_and_lowers_the_loss(tiny_model_dir):
    from model.nets.network import load_model

    m = load_model(tiny_model_dir)
    before = {k: v.clone() for k, v in m.unet.state_dict().items()}
    x0 = _x0(16)
    res = lk.train_step(m.unet, m.schedule, x0, torch.Generator().manual_seed(0), batch_size=4, lr=1e-4)
    after = m.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in m.unet.parameters())
    assert res.loss_after < res.loss_before
    assert res.grad_norm > 0 and res.timesteps.shape == (4,)
    # same seed, same batch: the same loss before; SGD lowers it too
    sgd = lk.train_step(
        m.unet, m.schedule, x0, torch.Generator().manual_seed(0), batch_size=4, lr=1e-3, optimizer="sgd"
    )
    assert sgd.loss_before == res.loss_before
    assert sgd.loss_after < sgd.loss_before
    # a v-prediction model is trained on v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0
    v_sched = make_schedule("linear", prediction_type="v_prediction")
    v = lk.train_step(m.unet, v_sched, x0, torch.Generator().manual_seed(0), batch_size=4, lr=1e-4)
    assert v.target == "v_prediction" and v.loss_after < v.loss_before and v.loss_before != res.loss_before


# ---------------------------------------------------------------------------------- codecs, CLI, purity


def test_codec_bpd_noise_costs_about_8_bits_and_flat_costs_little():
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (1, 3, 64, 64), generator=g).float() / 127.5 - 1
    flat = torch.zeros(1, 3, 64, 64)
    n, f = lk.codec_bpd(noise), lk.codec_bpd(flat)
    assert n["png"] > 7.9  # random bytes do not compress
    assert f["png"] < 0.2 and f["jpeg"] < n["jpeg"]


def test_cli_prints_table_and_bits_per_dim_last(tmp_path, capsys):
    from model.nets.checkpoint_io import save_model, tiny_unet

    folder = save_model(tiny_unet(32), make_schedule("linear", T=40), tmp_path / "m")
    img = tmp_path / "img.png"
    from conftest import png_bytes

    img.write_bytes(png_bytes((48, 40)))
    assert likelihood_cli.main([str(img), "--model", str(folder), "--res", "32", "--timesteps", "all"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"bits/dim: \d+\.\d{3}", out[-1])
    assert any(line.split()[:1] == ["39"] for line in out)  # the table reaches the last index
    assert likelihood_cli.main([str(img), "--model", str(folder), "--res", "32", "--timesteps", "5"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"bits/dim: \d+\.\d{3}", out[-1]) and any("standard error" in x for x in out)
    assert likelihood_cli.main([str(img), "--model", str(folder), "--timesteps", "lots"]) == 2
    assert "timesteps" in capsys.readouterr().err


def test_module_is_pure():
    """No streamlit or plotly import anywhere in model/diffusion/likelihood.py (top level or inside functions)."""
    import ast

    tree = ast.parse((ROOT / "model" / "diffusion" / "likelihood.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" in names  # the check sees imports at all
    assert not names & {"streamlit", "plotly"}
