"""Issue 36, the teaching pages: a question comes before anything on the page that answers it; a plain sentence and
a picture before any formula; Play on Forward moves the slider with the pictures; a revealed picture is as big as
the page's other pictures. Checked on the page's elements in the order they are drawn (AppTest)."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import app_test, assert_ok

from app.ui import present, reveal

torch.set_num_threads(1)


def elements(at) -> list[tuple[object, list]]:
    """Every element of the main area in the order drawn, with its chain of enclosing blocks (outermost first)."""
    out = []

    def walk(node, parents):
        kids = getattr(node, "children", None)
        if kids:
            for child in kids.values():
                walk(child, [*parents, node])
        else:
            out.append((node, parents))

    walk(at.main, [])
    return out


def text(node) -> str:
    value = getattr(node, "value", None)
    return value if isinstance(value, str) else ""


def position(at, found) -> int:
    """The index of the first element for which ``found(node, parents)`` holds."""
    for i, (node, parents) in enumerate(elements(at)):
        if found(node, parents):
            return i
    raise AssertionError("not on the page")


def in_block(key: str):
    return lambda node, parents: any(getattr(p, "key", None) == key for p in parents)


def is_type(name: str):
    return lambda node, parents: type(node).__name__ == name or getattr(node, "type", None) == name


def says(*words: str):
    return lambda node, parents: any(w in text(node) for w in words)


def is_formula(node, parents) -> bool:
    """A LaTeX element, or text with markdown math (not a script's ``$``)."""
    kind = type(node).__name__
    return kind == "Latex" or (kind in ("Markdown", "Caption", "Title", "Subheader") and "$" in text(node))


# --- questions first -------------------------------------------------------------------------------------------
def test_denoise_asks_before_its_pictures_sweep_and_sentence_answer(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/denoise.py")
    at.run()
    assert_ok(at)
    q = position(at, in_block("reveal_denoise_sharper"))
    # the sentence that gives the answer away ("blurry at large t, sharp at small t") and the PSNR-vs-t sweep
    assert q < position(at, says("blurry guess")), "the answer's sentence is above the question"
    assert q < position(at, is_type("plotly_chart")), "the sweep chart is above the question"
    assert q < position(at, is_type("Image")), "x̂₀ at the current t is shown above the question"


def test_forward_asks_before_its_pictures_and_schedule_chart(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    assert_ok(at)
    q = position(at, in_block(f"reveal_forward_t{reveal.FORWARD_T}"))
    assert q < position(at, is_type("plotly_chart"))  # the schedule's weights at t = 900 answer it
    assert q < position(at, says("The noise now dominates", "The photo still dominates"))


def test_forward_opens_with_a_plain_sentence_and_a_picture_before_any_formula(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    assert_ok(at)
    first_formula = position(at, is_formula)
    assert position(at, is_type("Image")) < first_formula
    assert position(at, says("Markov chain")) >= first_formula
    assert position(at, says("reparametrisation")) >= first_formula
    intro = next(text(n) for n, _ in elements(at) if type(n).__name__ == "Markdown" and text(n))
    assert "noise" in intro and "$" not in intro and "Markov" not in intro


# --- Play on Forward -------------------------------------------------------------------------------------------
def test_during_play_on_forward_the_slider_follows_the_pictures(tiny_model_dir, monkeypatch):
    """The slider stayed at 500 while the caption read t = 564: between two frames (the pause), the t slider's value
    is the t whose picture is shown."""
    import streamlit as st

    monkeypatch.setattr(present, "FRAME_SECONDS", 0.0)
    seen = []
    real_sleep = time.sleep

    def pause(seconds):  # the page's pause between two frames, in the script's thread
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        if get_script_run_ctx(suppress_warning=True) is not None and st.session_state.get("fwd_playing"):
            shown = st.session_state.get("fwd_played") or [None]
            seen.append((st.session_state.get("fwd_t"), shown[-1]))
        real_sleep(seconds)

    at = app_test(tiny_model_dir, page="views/forward.py")
    at.run()
    monkeypatch.setattr(time, "sleep", pause)
    at.button(key="fwd_play").click().run()
    assert_ok(at)
    frames = present.frames(0, 999)
    assert [step for step, _ in seen] == frames[:-1], seen
    assert all(t == shown for t, shown in seen), seen  # slider value == the t on screen
    assert at.slider(key="fwd_t").value == 999 and at.session_state["fwd_played"] == frames


# --- the revealed pictures -------------------------------------------------------------------------------------
def column_share(parents) -> float:
    """The share of its row's width the innermost column holding an element has (1.0 outside any column)."""
    for p in reversed(parents):
        weight = getattr(p, "weight", None)
        if weight is not None:
            return float(weight)
    return 1.0


@pytest.mark.parametrize("page", ["views/forward.py", "views/denoise.py"])
def test_revealed_pictures_are_as_big_as_the_pages_other_pictures(tiny_model_dir, page):
    """They were drawn across the page's width (about 900 px); the page's own pictures are a third or a quarter."""
    at = app_test(tiny_model_dir, page=page)
    at.run()
    qid = f"forward_t{reveal.FORWARD_T}" if "forward" in page else "denoise_sharper"
    options = reveal.LOOKS if "forward" in page else reveal.SHARP_OPTIONS
    at.radio(key=f"reveal_pick_{qid}").set_value(list(options)[0]).run()
    assert_ok(at)
    shown = [(n, ps) for n, ps in elements(at) if type(n).__name__ == "Image" and in_block(f"reveal_{qid}")(n, ps)]
    revealed = [(n, ps) for n, ps in shown if any(c.startswith(("x_t at t =", "x̂₀ at t =")) for c in n.captions)]
    assert revealed
    for _, parents in revealed:
        assert column_share(parents) <= 1 / 3 + 1e-9
