"""The settings in the address (app/session/urlstate.py): restored from a link on every page, written back on every run,
bad values refused with a sentence, an uploaded photo replaced by the sample with a sentence."""

from __future__ import annotations

import pytest
import torch
from conftest import APP_ENTRY, assert_ok, image_captions
from streamlit.testing.v1 import AppTest

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention


def _app(model_dir, params: dict[str, str], page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP_ENTRY, default_timeout=240)
    at.session_state["model_source"] = str(model_dir)
    for k, v in params.items():
        at.query_params[k] = v
    if page:
        at.switch_page(page)
    return at


# (page file, link parameters, {widget key: value the widget must show})
PAGES = [
    (
        "views/forward.py",  # asked for by name: "/" is the Start page (issue 26)
        {"img": "coffee", "res": "32", "t": "600", "schedule": "cosine", "seed": "7"},
        {"fwd_t": 600, "fwd_schedule": "cosine", "fwd_seed": 7, "sample_name": "coffee", "resolution": 32},
    ),
    ("views/denoise.py", {"res": "32", "t": "123", "seed": "4"}, {"den_t": 123, "den_seed": 4}),
    (
        "views/trajectory.py",
        {"res": "32", "start": "photo", "t_start": "250", "sampler": "ddpm", "steps": "20", "seed": "3"},
        {"traj_t_start": 250, "traj_sampler": "DDPM", "traj_steps": 20, "traj_seed": 3},
    ),
    ("views/inside.py", {"res": "32", "t": "321", "seed": "2"}, {"ins_t": 321, "ins_seed": 2}),
    (
        "views/objective.py",
        {"res": "32", "seed": "5", "n": "20", "draws": "2"},
        {"obj_seed": 5, "obj_n": 20, "obj_draws": 2},
    ),
]


@pytest.mark.parametrize(
    ("page", "params", "want"), PAGES, ids=["forward", "denoise", "trajectory", "inside", "objective"]
)
def test_a_link_restores_every_page_and_the_address_keeps_it(tiny_model_dir, page, params, want):
    at = _app(tiny_model_dir, params, page)
    at.run()
    assert_ok(at)
    assert not at.warning, [w.value for w in at.warning]
    for key, value in want.items():
        assert at.session_state[key] == value, key
    widgets = {w.key: w for w in [*at.slider, *at.number_input, *at.radio, *at.select_slider, *at.selectbox]}
    for key, value in want.items():
        if key in widgets:
            assert widgets[key].value == value, key
    # written back: the address holds the same settings (a reload keeps them)
    for k, v in params.items():
        assert at.query_params[k] == v, k
    # and a change lands in the address
    t_key = {None: "fwd_t", "views/denoise.py": "den_t", "views/inside.py": "ins_t"}.get(page)
    if t_key:
        at.slider(key=t_key).set_value(42).run()
        assert at.query_params["t"] == "42"


RUN = {"start": "photo", "t_start": "300", "steps": "10", "seed": "1", "run": "1"}  # the view needs a run


@pytest.mark.parametrize(("page", "key"), [("views/forward.py", "fwd_freq"), ("views/trajectory.py", "traj_freq")])
def test_the_frequency_view_travels_in_the_link(tiny_model_dir, page, key):
    extra = RUN if key == "traj_freq" else {}
    at = _app(tiny_model_dir, {"res": "32", "freq": "1", **extra}, page)
    at.run()
    assert_ok(at)
    assert at.toggle(key=key).value is True and at.query_params["freq"] == "1"
    at.toggle(key=key).set_value(False).run()
    assert at.query_params.get("freq", "0") == "0"


def test_forward_pictures_follow_the_link(tiny_model_dir):
    at = _app(tiny_model_dir, {"t": "600", "res": "32"}, "views/forward.py")  # "/" is Start here (issue 26)
    at.run()
    assert_ok(at)
    assert "x_t at t = 600" in image_captions(at)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"t": "abc"}, "t=`abc` should be a whole number"),
        ({"t": "5000"}, "t=`5000` should be from 0 to 999"),
        ({"schedule": "quadratic"}, "should be one of linear, cosine"),
        ({"res": "33"}, "res=`33` should be one of"),
        ({"img": "nosuchphoto"}, "is not one of the samples"),
        ({"model": "/etc"}, "a link cannot choose a folder on the server"),
    ],
)
def test_bad_values_in_a_link_get_a_sentence_not_a_traceback(tiny_model_dir, params, fragment):
    at = _app(tiny_model_dir, {"res": "32", **params} if "res" not in params else params, "views/forward.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(w.value for w in at.warning)
    assert fragment in text, text
    assert at.title  # the page still drew


def test_an_uploaded_photo_falls_back_to_the_sample_with_one_sentence(tiny_model_dir):
    at = _app(tiny_model_dir, {"img": "upload", "res": "32", "t": "400"}, "views/forward.py")
    at.run()
    assert_ok(at)
    assert at.session_state["image_source"] == "Sample photo"
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and "uploaded photo" in warnings[0] and "astronaut" in warnings[0]
    assert "x_t at t = 400" in image_captions(at)
    assert at.query_params["img"] == "astronaut"


def test_the_sender_with_an_upload_writes_img_upload(tiny_model_dir):
    from conftest import png_bytes

    at = _app(tiny_model_dir, {"res": "32"})
    at.session_state["image_source"] = "Upload"
    data = png_bytes()
    at.session_state["upload_bytes"], at.session_state["upload_digest"] = data, "x" * 64
    at.run()
    assert_ok(at)
    assert at.query_params["img"] == "upload"


def test_a_trajectory_link_with_a_run_runs_it_and_shows_the_same_step(tiny_model_dir):
    params = {"res": "32", "start": "photo", "t_start": "300", "steps": "10", "seed": "1", "run": "1", "step": "4"}
    at = _app(tiny_model_dir, params, "views/trajectory.py")
    at.run()
    assert_ok(at)
    run = at.session_state["traj_run"]["run"]
    assert run.num_steps == 10 and run.ts[0] == 300
    assert at.slider(key="traj_step").value == 4
    assert any(m.value.startswith("**Step 4 of 10**") for m in at.markdown)
    assert at.query_params["run"] == "1" and at.query_params["step"] == "4"
    assert "w" not in at.query_params and "class" not in at.query_params  # no classes: no class, no guidance
    # a changed setting: the shown run no longer matches, so the address drops run=1
    at.slider(key="traj_t_start").set_value(200).run()
    assert "run" not in at.query_params


def test_a_class_travels_in_the_link(tiny_cond_model_dir):
    at = _app(tiny_cond_model_dir, {"res": "32", "t": "100", "class": "Bag"}, "views/denoise.py")
    at.run()
    assert_ok(at)
    assert at.selectbox(key="den_class").value == "Bag"
    assert at.query_params["class"] == "Bag"
    bad = _app(tiny_cond_model_dir, {"res": "32", "class": "Spaceship"}, "views/denoise.py")
    bad.run()
    assert not bad.exception
    assert any("Spaceship" in w.value for w in bad.warning)


def test_a_bundled_model_in_the_link():
    at = AppTest.from_file(APP_ENTRY, default_timeout=240)
    at.query_params["model"] = "fashion"
    at.query_params["res"] = "32"
    at.query_params["img"] = "bag"
    at.switch_page("views/about.py")
    at.run()
    assert_ok(at)
    assert at.session_state["model_source"] == "fashion"
    assert at.radio(key="mp_bundled").value == "fashion"
    assert at.query_params["model"] == "fashion"


def test_a_generation_link_with_the_fashion_generator_keeps_its_class():
    """From pure noise the photo model hands over to the Fashion generator: the link's class is one of its classes."""
    from app.compute import models

    models.get_model("fashion")  # committed: a checkpoint that fails to load fails here, with the loader's words
    at = AppTest.from_file(APP_ENTRY, default_timeout=240)
    for k, v in {"model": "bundled", "res": "64", "start": "noise", "class": "Bag", "w": "2", "steps": "10"}.items():
        at.query_params[k] = v
    at.switch_page("views/trajectory.py")
    at.run()
    assert_ok(at)
    assert not at.warning, [w.value for w in at.warning]
    assert at.selectbox(key="traj_class").value == "Bag" and at.slider(key="traj_guidance").value == 2.0
    assert at.query_params["class"] == "Bag" and at.query_params["start"] == "noise"


def test_a_block_the_model_lacks_gets_a_sentence_and_the_default(tiny_model_dir):
    at = _app(tiny_model_dir, {"res": "32", "block": "down 9"}, "views/inside.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(w.value for w in at.warning)
    assert "block=`down 9` is not a block of this model" in text, text
    assert "shows up 1" in text and "its blocks are conv_in, down 0, down 1, mid" in text, text  # the choices
    assert at.session_state["ins_block"] == "up 1" and at.query_params["block"] == "up 1"
    at.run()  # said once; the page goes on with the default
    assert not any("block=" in w.value for w in at.warning)


def test_a_block_the_model_has_is_taken_without_a_sentence(tiny_model_dir):
    at = _app(tiny_model_dir, {"res": "32", "block": "down 1"}, "views/inside.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("block=" in w.value for w in at.warning)
    assert at.session_state["ins_block"] == "down 1"
