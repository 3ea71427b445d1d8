"""The sidebar speaks to students (issue 36, item 13): plain words in view, the operator's technical line (prediction
type, arithmetic, GMAC, the classroom lock's setting) in a drawer; no photo picker on pages that use no photo."""

from __future__ import annotations

import torch
from conftest import app_test, assert_ok

from app.session import sources

torch.set_num_threads(1)
TECHNICAL = ("GMAC", "predicts", "fp32", "DIFFUSION_LENS_SOURCES", "parameters")


def in_view_and_in_drawer(at) -> tuple[str, str]:
    """The sidebar's captions outside the "Technical details" drawer, and inside it."""
    drawer = [e for e in at.sidebar.expander if e.label == "Technical details"]
    assert len(drawer) == 1
    inside = [c.value for c in drawer[0].caption]
    outside = [c.value for c in at.sidebar.caption if c.value not in inside]
    return " ".join(outside), " ".join(inside)


def test_plain_words_in_view_and_the_technical_line_in_a_drawer(monkeypatch, server_env):
    server_env(sources.ENV, "bundled")  # a classroom server's lock: its sentence names the setting
    at = app_test(page="views/about.py", resolution=None, timeout=180)
    at.run()
    assert_ok(at)
    plain, technical = in_view_and_in_drawer(at)
    assert "The photo model" in plain and "one step takes about" in plain
    assert not [w for w in TECHNICAL if w in plain], plain
    assert "GMAC" in technical and "predicts" in technical and sources.ENV in technical


def test_no_photo_picker_on_the_particle_lab_and_the_race_and_the_photo_is_kept(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    assert_ok(at)
    at.sidebar.selectbox(key="sample_name").set_value("coffee").run()
    for page in ("views/particles.py", "views/race.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        keys = {w.key for w in [*at.sidebar.radio, *at.sidebar.selectbox, *at.sidebar.select_slider]}
        assert not keys & {"image_source", "sample_name", "resolution"}, keys
        assert "Your image" not in " ".join(m.value for m in at.sidebar.markdown)
        assert at.sidebar.radio(key="mp_kind")  # the model picker stays
    at.switch_page("views/forward.py").run()
    assert_ok(at)
    assert at.sidebar.selectbox(key="sample_name").value == "coffee"  # the learner's photo is still chosen
    assert at.sidebar.select_slider(key="resolution").value == 32


def test_words_to_pictures_has_the_photo_picker_for_its_photo_to_emoji_section(tiny_model_dir):
    """Words to pictures turns the chosen photo into an emoji (SDEdit): the picker is on that page too."""
    at = app_test(tiny_model_dir, page="views/words.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    keys = {w.key for w in [*at.sidebar.radio, *at.sidebar.selectbox, *at.sidebar.select_slider]}
    assert {"image_source", "sample_name"} <= keys, keys
