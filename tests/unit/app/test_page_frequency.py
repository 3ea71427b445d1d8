"""AppTest: the frequency view (issue 27) on the Forward and Reverse trajectory pages, on the tiny model at 32 px."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import torch
from conftest import app_test, assert_ok
from PIL import Image

from app.ui.frequency import FLAT_IMAGE

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention


def _spectrum_charts(at) -> list[dict]:
    """The frequency charts on the page, as Plotly JSON."""
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [f for f in figs if f["layout"]["title"]["text"].startswith("Power at each frequency")]


def _trace(fig: dict, start: str) -> dict:
    (found,) = [tr for tr in fig["data"] if tr["name"].startswith(start)]
    return found


def _y(fig: dict, start: str) -> list[float]:
    """A trace's y values: Plotly sends numpy arrays as base64 ``{"dtype", "bdata"}``, lists as lists."""
    y = _trace(fig, start)["y"]
    if isinstance(y, dict):
        y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).tolist()
    return list(y)


def _f_max(fig: dict) -> int:
    found = [tr for tr in fig["data"] if tr["name"].startswith("f_max")]
    return int(found[0]["x"][0]) if found else 0


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_forward_page_shows_the_spectrum_and_it_follows_the_slider(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    assert_ok(at)
    assert any(s.value == "Which details drown first?" for s in at.subheader)
    assert _spectrum_charts(at) == []  # off until asked for: the classroom's slider steps stay as cheap as before
    at.toggle(key="fwd_freq").set_value(True).run()
    assert_ok(at)
    (fig,) = _spectrum_charts(at)
    assert fig["layout"]["title"]["text"].endswith("t = 250")
    assert fig["layout"]["xaxis"]["type"] == "log" and fig["layout"]["yaxis"]["type"] == "log"
    assert len(_y(fig, "x₀: the photo")) == 16  # 32 px: radii 1 .. 16
    floor_250 = _y(fig, "noise floor")[0]
    measured_250 = _y(fig, "x_t, measured")
    f_250 = _f_max(fig)
    assert any("f_max = " in c.value and "t = 250" in c.value for c in at.caption)

    at.slider(key="fwd_t").set_value(700).run()
    assert_ok(at)
    (fig,) = _spectrum_charts(at)
    assert fig["layout"]["title"]["text"].endswith("t = 700")
    assert _y(fig, "noise floor")[0] > floor_250  # the floor rises with t
    assert _y(fig, "x_t, measured") != measured_250  # x_t's spectrum is measured again
    f_linear_700 = _f_max(fig)
    assert f_linear_700 < f_250  # more of the photo is drowned
    assert any("t = 700" in c.value for c in at.caption)

    at.radio(key="fwd_schedule").set_value("cosine").run()  # the cosine schedule keeps more of the photo at t = 700
    assert_ok(at)
    (fig,) = _spectrum_charts(at)
    assert _f_max(fig) > f_linear_700


def test_a_flat_or_one_pixel_upload_gets_one_sentence_and_the_page_keeps_running(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.session_state["fwd_freq"] = True
    at.run()
    assert len(_spectrum_charts(at)) == 1
    at.radio(key="image_source").set_value("Upload").run()
    flat = np.full((40, 40, 3), 128)
    one_px = np.array([[[200, 30, 30]]])  # a 1 x 1 picture: resized, it is one flat colour
    for name, arr in (("flat.png", flat), ("pixel.png", one_px)):
        at.file_uploader(key="uploader").set_value((name, _png(arr), "image/png")).run()
        assert_ok(at)
        assert [i.value for i in at.info] == [FLAT_IMAGE]
        assert _spectrum_charts(at) == []
        assert any(c.startswith("x_t at t = ") for img in at.image for c in img.captions)  # the rest of the page
    noisy = np.random.default_rng(0).integers(0, 256, (40, 40, 3))
    at.file_uploader(key="uploader").set_value(("noisy.png", _png(noisy), "image/png")).run()
    assert_ok(at)
    assert len(_spectrum_charts(at)) == 1 and not at.info


def test_trajectory_page_shows_x0_hat_spectrum_and_it_follows_the_step(tiny_model_dir):
    at = app_test(tiny_model_dir, timeout=180)
    at.switch_page("views/trajectory.py")
    at.run()
    at.slider(key="traj_t_start").set_value(600)
    at.slider(key="traj_steps").set_value(10)
    at.button(key="traj_go").click().run()
    assert_ok(at)
    assert any(s.value.startswith("Coarse to fine") for s in at.subheader)
    assert _spectrum_charts(at) == []
    at.toggle(key="traj_freq").set_value(True).run()
    assert_ok(at)
    at.slider(key="traj_step").set_value(1).run()  # after Run the step slider sits on the result (issue 36)
    assert_ok(at)
    (fig,) = _spectrum_charts(at)
    assert "step 1 (t = 600)" in fig["layout"]["title"]["text"]
    first = _y(fig, "x̂₀ at this step")
    assert _trace(fig, "x₀: the photo")["name"] == "x₀: the photo, R₀"
    floor_first = _y(fig, "noise floor")[0]

    at.slider(key="traj_step").set_value(10).run()
    assert_ok(at)
    (fig,) = _spectrum_charts(at)
    assert "step 10 (t = " in fig["layout"]["title"]["text"]
    assert _y(fig, "x̂₀ at this step") != first
    assert _y(fig, "noise floor")[0] < floor_first  # later steps have less noise
    assert any("x̂₀ is the network's guess" in c.value for c in at.caption)


def test_trajectory_from_pure_noise_uses_the_finished_sample_as_reference(tiny_model_dir):
    at = app_test(tiny_model_dir, timeout=180)
    at.session_state["traj_freq"] = True
    at.switch_page("views/trajectory.py")
    at.run()
    at.radio(key="traj_source").set_value("Pure noise (generate)")
    at.slider(key="traj_steps").set_value(10)
    at.button(key="traj_go").click().run()
    assert_ok(at)
    final = at.session_state["traj_run"]["run"].final
    charts = _spectrum_charts(at)
    if np.ptp(final) > 0:
        (fig,) = charts
        assert _trace(fig, "the finished sample")["name"] == "the finished sample, R₀"
    else:  # a random tiny network may end in one flat colour: then the sentence instead
        assert charts == [] and FLAT_IMAGE in [i.value for i in at.info]
