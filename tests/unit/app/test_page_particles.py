"""AppTest: the Particle lab and the Sampler race pages, through the entry file."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import app_test, assert_ok

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention


def _titles(at) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def _lab(tiny_model_dir, **state):
    at = app_test(tiny_model_dir, page="views/particles.py")
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    return at


def test_particle_lab_opens_with_the_exact_field_and_paths(tiny_model_dir):
    at = _lab(tiny_model_dir)
    assert_ok(at)
    titles = " ".join(_titles(at))
    assert "Exact field at t = 500" in titles and "Paths of the exact denoiser" in titles
    assert [m.label for m in at.metric] == ["ODE (DDIM, η = 0): straightness", "SDE (DDPM): straightness"]
    at.radio(key="pl_use").set_value("1 point").run()
    assert_ok(at)
    assert "1 point(s)" in " ".join(_titles(at))
    at.slider(key="pl_t").set_value(900).run()
    assert "t = 900" in " ".join(_titles(at))


def test_flow_mode_one_point_paths_are_straight(tiny_model_dir):
    at = _lab(tiny_model_dir, pl_mode="flow matching", pl_data="few points", pl_k=1)
    assert_ok(at)
    assert any("One point" in i.value for i in at.info)
    ode, sde = at.metric  # the flow's ODE, and DDPM's SDE drawn in the flow frame
    assert ode.label.startswith("ODE (Euler") and ode.value == "1.000"
    assert sde.label.startswith("SDE (DDPM, in the flow frame)") and float(sde.value) < 0.9


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "no points"), ("nan, 0.1", "NaN"), ("1, 2, 3", "not two numbers"), ("0.1, 99", "outside")],
)
def test_bad_points_get_one_sentence_and_the_page_keeps_running(tiny_model_dir, text, words):
    at = _lab(tiny_model_dir, pl_data="your points", pl_text=text)
    assert not at.exception
    assert len(at.warning) == 1 and words in at.warning[0].value
    at.session_state["pl_text"] = "0.2, 0.3\n-0.4, 0.1"
    at.run()
    assert_ok(at)
    assert "2 point(s)" in " ".join(_titles(at))


@pytest.mark.slow
def test_train_live_then_the_learned_field_is_overlaid(tiny_model_dir):
    at = _lab(tiny_model_dir, pl_mode="flow matching", pl_n=100, pl_train_steps=250)
    (button,) = [b for b in at.button if b.label == "Train the network"]
    button.click().run()
    assert_ok(at)
    titles = " ".join(_titles(at))
    assert "Training loss" in titles and "samples, 16 steps (MMD²" in titles
    field = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Exact field" in c.proto.spec)
    assert "learned field" in [tr.get("name") for tr in field["data"]]
    # a second session with the same settings gets the same network without training again
    again = _lab(tiny_model_dir, pl_mode="flow matching", pl_n=100, pl_train_steps=250)
    assert not [b for b in again.button if b.label == "Train the network"]
    assert "Training loss" in " ".join(_titles(again))


def test_sampler_race_on_particles_shows_the_race_chart(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/race.py")
    at.session_state["race_names"] = ["Heun", "FlowMatch Euler"]
    at.session_state["race_steps"] = [4, 8]
    at.run()
    assert_ok(at)
    titles = " ".join(_titles(at))
    assert "The sampler race" in titles and "40 paths per scheduler" in titles
    rows = at.dataframe[0].value
    assert sorted(rows["network evaluations (fewer is cheaper)"].tolist()) == [4, 7, 8, 15]  # Heun: 2N - 1
    # every quality column says which way is better (issue 36, item 2)
    assert "MMD² to the data (lower is better)" in rows.columns
    assert "path straightness (1 = a straight line)" in rows.columns
    # Heun's overshoot is explained with this run's figures (it is Heun's own: tests/unit/model/particles/...)
    assert any(c.value.startswith("Heun is not broken: ") and "|x| = " in c.value for c in at.caption)


def test_sampler_race_asks_for_a_choice_instead_of_failing(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/race.py")
    at.session_state["race_names"] = []
    at.run()
    assert not at.exception
    assert "Pick at least one scheduler" in at.warning[0].value


@pytest.mark.slow
def test_sampler_race_on_the_fashion_generator(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/race.py")
    at.session_state["race_contest"] = "Fashion generator"
    at.session_state["race_names"] = ["DDIM", "FlowMatch Euler"]
    at.session_state["race_steps"] = [4]
    at.run()
    assert_ok(at)
    (button,) = [b for b in at.button if b.label == "Run the race"]
    button.click().run()
    assert_ok(at)
    (chart,) = at.get("plotly_chart")
    panels = [a["text"].replace("<br>", " ") for a in json.loads(chart.proto.spec)["layout"]["annotations"]]
    assert panels == ["RMS distance to the reference (lower is better)", "path straightness (1 = a straight line)"]
    # each scheduler's name in a line of its own beside its pictures, not in a caption broken under a 64-px picture
    names = {m.value for m in at.markdown}
    assert {"**reference**", "**DDIM**, 4 steps", "**FlowMatch Euler**, 4 steps"} <= names
    assert len(at.image) == 3
