"""AppTest: "Questions students ask" (issue 34): does it copy, what guidance samples, can it fix my photo."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import app_test, assert_ok

from app.charts import questions as pq
from model.diffusion.schedule import make_schedule
from model.particles import tilted

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention


def _titles(at) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def _page(model_dir, **state):
    at = app_test(model_dir, resolution=32, page="views/questions.py")
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    return at


def test_does_it_copy_exact_denoiser_lands_on_a_training_image(tiny_model_dir):
    at = _page(tiny_model_dir, qs_copy_steps=10)
    assert_ok(at)
    captions = [c for img in at.image for c in img.captions]
    exact = next(c for c in captions if c.startswith("nearest training image"))
    assert float(exact.split("distance ")[1].rstrip(")")) < 0.01  # the exact denoiser returned a training image
    assert any("Distance to the nearest" in t for t in _titles(at))
    assert [m.label for m in at.metric][0] == "Exact denoiser: near-copies"
    assert int(at.metric[0].value.rstrip("%")) >= 95  # the exact denoiser's samples land on the training points


def test_guidance_page_draws_the_target_and_the_methods(tiny_model_dir):
    at = _page(tiny_model_dir, qs_which="What does guidance really sample?", qs_gamma=1.0)
    assert_ok(at)
    titles = " ".join(_titles(at))
    assert "γ = 1" in titles and "How far each method" in titles


@pytest.mark.parametrize(
    ("xs", "ys", "words"),
    [((40, 40), (20, 80), "empty"), ((0, 100), (0, 100), "whole photo"), ((0, 100), (0, 96), "too little")],
)
def test_a_bad_hole_gets_a_sentence_and_the_page_keeps_running(tiny_model_dir, xs, ys, words):
    at = _page(tiny_model_dir, qs_which="Can it fix my photo?", qs_x=xs, qs_y=ys)
    assert not at.exception
    assert len(at.warning) == 1 and words in at.warning[0].value
    at.slider(key="qs_x").set_value((25, 75)).run()
    at.slider(key="qs_y").set_value((25, 75)).run()
    assert_ok(at)
    assert not at.warning


def test_inpainting_runs_and_shows_every_step(tiny_model_dir):
    at = _page(tiny_model_dir, qs_which="Can it fix my photo?", qs_steps=10, qs_sampler="DDIM")
    assert_ok(at)
    at.button(key="qs_fill").click().run()
    assert_ok(at)
    captions = [c for img in at.image for c in img.captions]
    assert "hole: from the model" in captions and any(c.startswith("filled in: PSNR") for c in captions)
    assert at.slider(key="qs_step").value == 10
    at.slider(key="qs_step").set_value(1).run()
    assert_ok(at)
    assert any("Step 1 of 10, at t = 999" in m.value for m in at.markdown)


def test_editing_by_noise_runs_every_t_once_then_the_slider_picks_one(tiny_model_dir):
    at = _page(tiny_model_dir, qs_which="Can it fix my photo?")
    assert_ok(at)
    assert not any(c.startswith("denoised back") for img in at.image for c in img.captions)
    at.button(key="qs_sweep").click().run()
    assert_ok(at)
    at.select_slider(key="qs_t_edit").set_value(900).run()
    assert_ok(at)
    captions = [c for img in at.image for c in img.captions]
    assert "noised to t = 900" in captions and any(c.startswith("denoised back: PSNR") for c in captions)
    assert any("How much of the photo survives" in t for t in _titles(at))


def test_plots_build_without_streamlit():
    res = tilted.compare(make_schedule("linear"), tilted.two_classes(), tilted.GuidanceSettings(n=50, steps=10))
    fig = pq.guidance_figure(res)
    assert len(fig.data) == 2 * len(res.samples)
    assert len(pq.guidance_bars(res).data) == 2


def test_start_here_links_to_the_page(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/start.py")
    at.run()
    assert_ok(at)

    def walk(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    links = {el.proto.page for el in walk(at.main) if getattr(el, "type", "") == "page_link"}
    assert "questions" in links
