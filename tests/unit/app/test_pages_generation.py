"""AppTest: grey and class-conditional models through every page; guidance and "one of each class" on
Reverse trajectory; the class on Denoise one step; generation from noise switching to the Fashion generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import APP_ENTRY, app_test, assert_ok, image_captions
from fakes import network_passes
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PAGES = ["views/forward.py", "views/denoise.py", "views/trajectory.py", "views/objective.py", "views/about.py"]


def _app(model_source: str, resolution: int = 32) -> AppTest:
    return app_test(model_source, resolution)


def _is_grey(arr: np.ndarray) -> bool:
    return (
        arr.ndim == 3
        and arr.shape[2] == 3
        and np.array_equal(arr[..., 0], arr[..., 1])
        and np.array_equal(arr[..., 1], arr[..., 2])
    )


@pytest.mark.parametrize("page", PAGES)
def test_every_page_works_with_a_grey_conditional_model(tiny_cond_model_dir, page):
    at = _app(str(tiny_cond_model_dir))
    at.switch_page(page).run()
    assert_ok(at)
    assert at.title, page


def test_grey_model_turns_the_photo_grey_and_runs_a_trajectory(tiny_cond_model_dir):
    at = _app(str(tiny_cond_model_dir))
    at.switch_page("views/trajectory.py").run()
    assert_ok(at)
    assert at.sidebar.caption and "grey" in " ".join(c.value for c in at.sidebar.caption)
    at.slider(key="traj_t_start").set_value(300)
    at.slider(key="traj_steps").set_value(10)
    at.selectbox(key="traj_class").set_value("no label (unconditional)")
    at.button(key="traj_go").click().run()
    assert_ok(at)
    stored = at.session_state["traj_run"]
    run = stored["run"]
    assert run.num_steps == 10 and run.psnr is not None  # from the (grey) photo
    assert all(_is_grey(a) for f in run.frames for a in f.panels()) and _is_grey(run.final)
    assert stored["parts"] is None  # no label: nothing to guide


def test_guidance_controls_formula_and_the_three_predictions(tiny_cond_model_dir):
    from app.compute import models as model_cache

    at = _app(str(tiny_cond_model_dir))
    at.switch_page("views/trajectory.py").run()
    at.radio(key="traj_source").set_value("Pure noise (generate)").run()
    assert_ok(at)
    at.selectbox(key="traj_class").set_value("Sneaker").run()
    at.slider(key="traj_guidance").set_value(3.0).run()
    assert_ok(at)
    latex = " ".join(x.value for x in at.latex)
    assert r"4\,\hat\epsilon(x_t, \text{Sneaker}) - 3\,\hat\epsilon(x_t, \varnothing)" in latex
    unet = model_cache.get_model(str(tiny_cond_model_dir)).unet
    with network_passes(unet) as batches:
        at.slider(key="traj_steps").set_value(10)
        at.button(key="traj_go").click().run()
    assert_ok(at)
    assert batches == [2] * 10  # cond and uncond batched together, one pass per step
    stored = at.session_state["traj_run"]
    assert (stored["settings"].label, stored["settings"].guidance) == (7, 3.0)
    assert len(stored["parts"]) == len(stored["run"].frames)
    caps = image_captions(at)
    assert "ε̂(x_t, y): with the class" in caps and "ε̂(x_t, ∅): without a label" in caps
    assert any(c.startswith("ε̃ = 4·ε̂(x_t, y) − 3·ε̂(x_t, ∅)") for c in caps)
    assert "class Sneaker, guidance w = 3" in at.success[0].value
    # the guided panel is the sampler's eps_hat: it differs from the conditional one when w > 0
    cond, _ = stored["parts"][0]
    assert not np.array_equal(cond, stored["run"].frames[0].eps_hat)


def test_one_of_each_class_in_one_batch(tiny_cond_model_dir):
    from app.compute import models as model_cache

    at = _app(str(tiny_cond_model_dir))
    at.switch_page("views/trajectory.py").run()
    at.slider(key="traj_steps").set_value(10)
    at.slider(key="traj_guidance").set_value(1.0).run()
    unet = model_cache.get_model(str(tiny_cond_model_dir)).unet
    with network_passes(unet) as batches:
        at.button(key="traj_each").click().run()
    assert_ok(at)
    assert batches == [20] * 10  # 10 classes x (cond, uncond), 10 steps
    caps = image_captions(at)
    from model.training.fashion import CLASSES

    assert all(name in caps for name in CLASSES)
    res, classes, w = at.session_state["traj_each_run"]
    assert len(res["final"]) == 10 and all(_is_grey(a) for a in res["final"]) and len(res["rows"]) == 8


def test_denoise_takes_the_class(tiny_cond_model_dir):
    at = _app(str(tiny_cond_model_dir))
    at.switch_page("views/denoise.py").run()
    assert_ok(at)
    sb = at.selectbox(key="den_class")
    assert sb.options[-1] == "no label (∅)" and "Sneaker" in sb.options
    mse_a = at.metric[0].value
    sb.set_value("Bag").run()
    assert_ok(at)
    assert any(c.startswith("ε̂ = ε_θ(x_t, t, y)") for c in image_captions(at))
    assert at.metric[0].value != mse_a  # the class changes the prediction


def test_pure_noise_with_the_photo_model_generates_with_the_fashion_generator():
    at = _app("bundled", 32)
    at.switch_page("views/trajectory.py").run()
    at.radio(key="traj_source").set_value("Pure noise (generate)").run()
    assert_ok(at)
    assert any("Fashion generator" in i.value and "smears" in i.value for i in at.info)
    assert at.selectbox(key="traj_class").value == "T-shirt/top"
    at.slider(key="traj_steps").set_value(10)
    at.button(key="traj_go").click().run()
    assert_ok(at)
    s = at.session_state["traj_run"]["settings"]
    assert s.model_key == "fashion" and s.resolution == 32 and s.image_key is None
    # the photo model anyway: no class picker, settings name the photo model
    at.checkbox(key="traj_photo_model_anyway").check().run()
    assert_ok(at)
    assert not [sb for sb in at.selectbox if sb.key == "traj_class"]


def test_picker_offers_both_bundled_models_and_switches_resolution_and_sample():
    at = AppTest.from_file(APP_ENTRY, default_timeout=240)
    at.run()
    assert_ok(at)
    r = at.radio(key="mp_bundled")
    assert r.options == ["Photo model", "Fashion generator"] or list(r.options) == ["bundled", "fashion"]
    r.set_value("fashion").run()
    assert_ok(at)
    ss = at.session_state
    assert ss["model_source"] == "fashion" and ss["resolution"] == 32 and ss["sample_name"] == "sneaker"
    assert "the Fashion generator" in " ".join(c.value for c in at.sidebar.caption)
    at.radio(key="mp_bundled").set_value("bundled").run()
    assert_ok(at)
    assert ss["model_source"] == "bundled" and ss["resolution"] == 64 and ss["sample_name"] == "astronaut"


def test_grey_images_keep_their_own_cache_key():
    from app.compute import core

    # the same photo as a colour and as a grey image must never share a cached result
    assert core.SAMPLES["sneaker"].is_file() and core.SAMPLES["bag"].is_file()
    from model.images.tensors import load_image, to_channels

    x = load_image(core.SAMPLES["astronaut"].read_bytes(), 32)
    g = to_channels(x, 1)
    assert g.shape == (1, 1, 32, 32)
    torch.testing.assert_close(g[0, 0], 0.299 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2])
