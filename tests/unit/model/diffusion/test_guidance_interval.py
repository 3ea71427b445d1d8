"""Guidance in a limited interval of t and CFG rescale (issue 26, item 5), and the interval a model's classes.json
names (the bundled Fashion generator's, chosen with bench/guidance.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from model.diffusion.guidance import cfg_combine, guidance_help, guided_eps, in_interval, rescale_cfg
from model.diffusion.reverse import predict_x0
from model.nets import hub, network
from model.nets.checkpoint_io import ModelLoadError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_in_interval_includes_both_ends_and_reads_a_batch_of_t():
    assert in_interval(500, None)
    assert in_interval(0, (0, 300)) and in_interval(300, (0, 300)) and not in_interval(301, (0, 300))
    assert in_interval(torch.full((4,), 120), (100, 200)) and not in_interval(torch.full((4,), 999), (100, 200))


def test_rescale_brings_the_std_back_to_the_conditional_one():
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    guided = cfg_combine(cond, uncond, 3.0)
    assert torch.equal(rescale_cfg(guided, cond, 0.0), guided)
    full = rescale_cfg(guided, cond, 1.0)
    torch.testing.assert_close(full.std(dim=(1, 2, 3)), cond.std(dim=(1, 2, 3)))
    half = rescale_cfg(guided, cond, 0.5)
    torch.testing.assert_close(half, 0.5 * full + 0.5 * guided)


def test_outside_the_interval_the_sampler_gets_the_conditional_prediction(tiny_cond_model_dir):
    m = network.load_model(str(tiny_cond_model_dir))
    assert m.guidance_interval is None  # its classes.json names none: guidance at every t
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([3, 7])
    inside = guided_eps(m, x, 200, y, 2.0, interval=(100, 300))
    everywhere = guided_eps(m, x, 200, y, 2.0)
    torch.testing.assert_close(inside.eps_hat, everywhere.eps_hat)
    outside = guided_eps(m, x, 800, y, 2.0, interval=(100, 300))
    torch.testing.assert_close(outside.eps_hat, outside.eps_cond)
    assert not torch.allclose(outside.eps_cond, outside.eps_uncond)  # both are still made, for the page's panels
    rescaled = guided_eps(m, x, 200, y, 2.0, rescale=1.0)
    # not linear, so no output gives x0_hat of the rescaled eps_hat: it is eq. 15, computed here, not by the sampler
    torch.testing.assert_close(rescaled.x0_hat, predict_x0(m.schedule, x, rescaled.eps_hat, 200))
    torch.testing.assert_close(rescaled.eps_hat.std(dim=(1, 2, 3)), rescaled.eps_cond.std(dim=(1, 2, 3)))


def test_a_model_carries_its_interval_in_classes_json(tiny_cond_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_cond_model_dir, folder)
    info = json.loads((folder / "classes.json").read_text())
    (folder / "classes.json").write_text(json.dumps({**info, "guidance_interval": [0, 300]}))
    m = network.load_model(str(folder))
    assert m.guidance_interval == (0, 300)
    x, y = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(2)), torch.tensor([1])
    g = guided_eps(m, x, 700, y, 2.0)  # the model's own interval applies
    torch.testing.assert_close(g.eps_hat, g.eps_cond)
    assert "0 ≤ t ≤ 300" in guidance_help(m)
    (folder / "classes.json").write_text(json.dumps({**info, "guidance_interval": [300, 5000]}))
    with pytest.raises(ModelLoadError, match="bad guidance_interval") as exc:
        network.load_model(str(folder))
    assert "\n" not in str(exc.value)


def test_the_words_promise_nothing_the_measurements_contradict(tiny_cond_model_dir):
    plain = guidance_help(network.load_model(str(tiny_cond_model_dir)))
    assert "more clearly the class" not in plain and "can also spoil" in plain
    fashion = network.load_model(str(hub.FASHION_MODEL))  # committed: a checkpoint that fails to load fails the test
    assert fashion.guidance_interval is not None
    assert "less recognisable" in guidance_help(fashion)
