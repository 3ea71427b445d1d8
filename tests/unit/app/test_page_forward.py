"""Page layer: the Forward process page through streamlit.testing.v1.AppTest."""

from __future__ import annotations

import pytest
from conftest import APP_ENTRY, image_captions, png_bytes
from streamlit.testing.v1 import AppTest


def _app() -> AppTest:
    at = AppTest.from_file(APP_ENTRY, default_timeout=120)
    at.switch_page("views/forward.py")  # "/" is the Start page (issue 26)
    at.run()
    assert not at.exception, at.exception
    return at


def _image_count(at: AppTest) -> int:
    return len(image_captions(at))


def _url(at: AppTest, caption_start: str) -> str:
    for el in at.image:
        for cap, url in zip(el.captions, el.value, strict=False):
            if cap.startswith(caption_start):
                return url
    raise AssertionError(f"no picture captioned {caption_start!r}")


def test_default_page_shows_pictures_chart_and_formula():
    at = _app()
    assert at.title[0].value.startswith("Forward process")
    caps = image_captions(at)
    assert "x₀ — the clean photo" in caps and "x_t at t = 250" in caps
    assert any(c.startswith("ε ~ N(0, I)") for c in caps)
    # sidebar thumbnail + x0, eps, x_t, and the 3 candidates of the predict-then-reveal question (app/ui/reveal.py);
    # the Markov-chain panel is off until toggled
    assert _image_count(at) == 4 + 3 and {"A", "B", "C"} <= set(caps)
    assert len(at.get("plotly_chart")) == 1
    assert "(t = 250)" in at.latex[0].value
    assert not at.error


def test_markov_chain_panel_runs_the_chain_and_compares_with_the_jump():
    at = _app()
    at.toggle(key="fwd_chain").set_value(True).run()
    assert not at.exception
    caps = image_captions(at)
    # snapshots along the chain, from s = 0 to s = t
    assert "chain, step s = 0" in caps and "chain, step s = 250" in caps
    assert "x_t by 251 chain steps" in caps and "x_t in one jump (closed form)" in caps
    assert len(at.get("plotly_chart")) == 2  # schedule chart + histogram
    stats = [c.value for c in at.caption if "Standardised noise part" in c.value][0]
    # both standardised noise parts have std close to 1 (12,288 pixels at 64 px)
    import re

    stds = [float(v) for v in re.findall(r"std (\d+\.\d+)", stats)]
    assert len(stds) == 2 and all(abs(v - 1) < 0.05 for v in stds)
    at.slider(key="fwd_t").set_value(800).run()
    assert not at.exception
    assert "x_t by 801 chain steps" in image_captions(at)


def test_moving_t_and_switching_schedule_updates_formula():
    at = _app()
    at.slider(key="fwd_t").set_value(999).run()
    assert not at.exception
    linear = at.latex[0].value
    assert "(t = 999)" in linear and "0.006" in linear  # sqrt(alpha_bar_999) = 0.0064 for the linear schedule
    at.radio(key="fwd_schedule").set_value("cosine").run()
    assert not at.exception
    assert at.latex[0].value != linear
    at.slider(key="fwd_t").set_value(0).run()
    assert "(t = 0)" in at.latex[0].value and "1.000" in at.latex[0].value


@pytest.mark.parametrize("sample", ["coffee", "chelsea", "rocket"])
def test_switching_sample(sample):
    at = _app()
    at.selectbox(key="sample_name").set_value(sample).run()
    assert not at.exception
    assert any(c.startswith(f"x₀: {sample}") for c in image_captions(at))


def test_upload_png_and_move_t():
    at = _app()
    at.radio(key="image_source").set_value("Upload").run()
    assert not at.exception
    assert any("Upload a photo" in i.value for i in at.info)
    at.file_uploader(key="uploader").set_value(("mine.png", png_bytes((50, 40)), "image/png")).run()
    assert not at.exception
    assert not at.error
    assert _image_count(at) >= 4
    assert any(c.startswith("x₀: mine.png, 64×64") for c in image_captions(at))
    before = _url(at, "x_t at t")
    at.slider(key="fwd_t").set_value(600).run()
    assert not at.exception
    assert "(t = 600)" in at.latex[0].value
    assert _url(at, "x_t at t") != before, "x_t should change when t moves"


def test_bad_upload_shows_a_message_not_a_traceback():
    at = _app()
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="uploader").set_value(("fake.png", b"this is not an image", "image/png")).run()
    assert not at.exception
    assert at.error, "a bad upload should show an error message"
    assert "could not be read" in at.error[0].value.lower() or "not" in at.error[0].value.lower()
    assert "Traceback" not in at.error[0].value
    # a good file afterwards works again
    at.file_uploader(key="uploader").set_value(("ok.png", png_bytes((30, 30)), "image/png")).run()
    assert not at.exception and not at.error
    assert _image_count(at) >= 4


def test_resolution_change():
    at = _app()
    at.select_slider(key="resolution").set_value(32).run()
    assert not at.exception
    assert any(c.endswith("32×32") for c in image_captions(at))
