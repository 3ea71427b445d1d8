"""AppTest: the "Training objective" page, through the entry file, on a tiny model with a short chain."""

from __future__ import annotations

import pytest
import torch
from conftest import APP_ENTRY, assert_ok
from streamlit.testing.v1 import AppTest

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention

T_SHORT = 50


@pytest.fixture(scope="module")
def short_model_dir(tmp_path_factory):
    """A tiny random UNet with a 50-step linear schedule, so "all T terms" is quick."""
    from model.diffusion.schedule import make_schedule
    from model.nets.checkpoint_io import save_model, tiny_unet

    return save_model(tiny_unet(32), make_schedule("linear", T=T_SHORT), tmp_path_factory.mktemp("short"))


def _app(model_dir) -> AppTest:
    at = AppTest.from_file(APP_ENTRY, default_timeout=180)
    at.session_state["model_source"] = str(model_dir)
    at.session_state["resolution"] = 32
    at.switch_page("views/objective.py")
    at.run()
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _chart_titles(at: AppTest) -> list[str]:
    import json

    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_page_shows_derivation_numbers_and_charts(short_model_dir):
    at = _app(short_model_dir)
    assert_ok(at)
    assert at.title[0].value.startswith("Training objective")
    titles = _chart_titles(at)
    assert len(titles) == 4, titles
    assert any("bits per dimension" in t for t in titles)  # per-t bound terms
    assert any("simple loss at each t" in t for t in titles)  # eps-MSE
    assert any("weightings" in t for t in titles) and any("costs" in t for t in titles)
    metrics = _metrics(at)
    assert "±" in metrics["Bound L (bits/dim)"]
    assert any("50 sampled t + L_0" in c.value for c in at.caption)
    assert float(metrics["PNG, lossless (bits/dim)"]) > 0 and float(metrics["JPEG q90, lossy (bits/dim)"]) > 0
    latex = " ".join(x.value for x in at.latex)
    for piece in (r"p_\theta(x_{0:T})", "L_T", "L_{t-1}", "D_{KL}", r"L_\text{simple}", r"\lambda_t"):
        assert piece in latex, piece
    assert any("simple loss favours large t" in m.value for m in at.markdown)
    assert any("Take one training step" in i.value for i in at.info)


def test_all_terms_button_and_training_step(short_model_dir):
    at = AppTest.from_file(APP_ENTRY, default_timeout=180)
    at.session_state["model_source"] = str(short_model_dir)
    at.session_state["resolution"] = 32
    at.session_state["obj_n"] = 20  # smaller than the defaults: this test is about the buttons
    at.session_state["obj_draws"] = 1
    at.switch_page("views/objective.py")
    at.run()
    assert_ok(at)
    at.button(key="obj_all_go").click().run()
    assert_ok(at)
    assert at.session_state["obj_all_for"][0]  # the image key
    metrics = _metrics(at)
    assert float(metrics["Bound L, all t (bits/dim)"]) > 0

    at.button(key="obj_step_go").click().run()
    assert_ok(at)
    metrics = _metrics(at)
    before, after = float(metrics["Loss before"]), float(metrics["Loss after"])
    assert after < before
    assert len(at.get("plotly_chart")) == 5
    # moving a cheap widget keeps the stored step and the all-terms result
    at.select_slider(key="obj_lr").set_value(1e-3).run()
    assert_ok(at)
    assert "Loss before" in _metrics(at)
    assert any("settings changed" in c.value for c in at.caption)
    assert "Bound L, all t (bits/dim)" in _metrics(at)


def test_learned_variance_model_gets_a_message(tmp_path):
    from model.diffusion.schedule import make_schedule
    from model.nets.checkpoint_io import save_model, tiny_unet

    folder = save_model(tiny_unet(32), make_schedule("linear", T=T_SHORT, variance_type="learned_range"), tmp_path)
    at = _app(folder)
    assert not at.exception, [e.value for e in at.exception]
    # one sentence, then the page goes on with the bundled model (issue 26: a model that cannot load falls back)
    (note,) = [w.value for w in at.warning if "variance" in w.value]
    assert "learned_range" in note and "bundled model" in note
    assert at.title[0].value.startswith("Training objective")


def test_l0_is_the_same_before_and_after_all_terms(short_model_dir):
    """Issue 26: L_0 moved (2.242 vs 2.220) after "Compute all terms", because the estimate and all terms each drew
    their own x_1. x_1 now has its own draw from the seed: the metric shows the same value before and after."""
    at = _app(short_model_dir)
    assert_ok(at)

    def l0() -> str:
        (m,) = [m for m in at.metric if m.label.startswith("L_0")]
        return m.value

    before = l0()
    assert not any(m.label.startswith("Bound L, all t") for m in at.metric)
    at.button(key="obj_all_go").click().run()
    assert_ok(at)
    assert any(m.label.startswith("Bound L, all t") for m in at.metric)  # the full bound is shown now
    assert l0() == before
    (m,) = [m for m in at.metric if m.label.startswith("L_0")]
    assert "the same x_1" in m.proto.help and "exact" not in m.proto.help
