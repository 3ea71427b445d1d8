"""AppTest: the Particle lab reads its text box once per text (issue 32, item 2), and in flow-matching mode its
slider is the σ its chart shows (issue 36, item 16). The brush and hand-made selections are in
tests/e2e/test_particles_inputs.py (AppTest cannot make a Plotly selection)."""

from __future__ import annotations

import json

import torch
from conftest import app_test, assert_ok

from model.particles import data

torch.set_num_threads(1)


def _titles(at) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_the_same_text_is_not_parsed_again_on_a_rerun(tiny_model_dir, monkeypatch):
    calls = []
    parse = data.parse_points
    monkeypatch.setattr(data, "parse_points", lambda text: calls.append(len(text)) or parse(text))
    at = app_test(tiny_model_dir, page="views/particles.py")
    at.session_state["pl_data"] = "your points"
    at.session_state["pl_text"] = "0.2, 0.3\n-0.4, 0.1"
    at.run()
    assert_ok(at)
    at.slider(key="pl_t").set_value(700).run()  # a rerun with the same text
    at.slider(key="pl_steps").set_value(10).run()
    assert_ok(at)
    assert len(calls) == 1
    at.text_area(key="pl_text").set_value("0.2, 0.3").run()  # a new text is read
    assert len(calls) == 2 and "1 point(s)" in " ".join(_titles(at))


def test_a_text_that_fills_the_box_gets_one_sentence(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/particles.py")
    at.session_state["pl_data"] = "your points"
    at.session_state["pl_text"] = "0.1 0.2\n" * (data.MAX_TEXT_CHARS // 8)
    at.run()
    assert not at.exception
    assert len(at.warning) == 1 and "64,000 characters" in at.warning[0].value


def test_flow_matching_slider_is_the_sigma_its_chart_shows(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/particles.py")
    at.session_state["pl_mode"] = "flow matching"
    at.run()
    assert_ok(at)
    (slider,) = [s for s in at.slider if s.key == "pl_sigma"]
    assert slider.label.startswith("σ")
    slider.set_value(0.101).run()
    assert_ok(at)
    assert "Exact field at σ = 0.101" in " ".join(_titles(at))
    assert any(c.value.startswith("σ = 0.101") for c in at.caption)
    at.radio(key="pl_mode").set_value("ε-prediction (DDPM)").run()
    assert [s.label for s in at.slider if s.key == "pl_t"] == ["t (0 = the first noising step)"]


def test_each_formula_line_is_short_enough_for_a_phone(tiny_model_dir):
    """One long line of LaTeX ran off a 400-px screen: the formulas are drawn as short lines (a browser check at
    400 px is in tests/e2e/test_browser_particles_theme.py)."""
    for mode in ("ε-prediction (DDPM)", "flow matching"):
        at = app_test(tiny_model_dir, page="views/particles.py")
        at.session_state["pl_mode"] = mode
        at.run()
        (formula,) = at.latex
        lines = formula.value.replace(r"\begin{gathered}", "").replace(r"\end{gathered}", "").split(r"\\")
        assert len(lines) >= 3, mode
        assert max(len(line) for line in lines) < 100, mode
