"""Presentation mode (app/ui/present.py): ?present=1 or the toggle, the exit button, and the Play animations."""

from __future__ import annotations

import pytest
import torch
from conftest import app_test
from streamlit.testing.v1 import AppTest

from app.ui import present

torch.set_num_threads(1)


@pytest.fixture
def fast_play(monkeypatch):
    monkeypatch.setattr(present, "FRAME_SECONDS", 0.0)


def _app(tiny_model_dir, page: str | None = None) -> AppTest:
    return app_test(tiny_model_dir, page=page)


def _css_injected(at: AppTest) -> bool:
    return any("stSidebar" in h.proto.body for h in at.get("html"))


def test_frames_are_even_and_include_both_ends():
    assert present.frames(0, 999) == sorted(set(present.frames(0, 999)))
    assert present.frames(0, 999)[0] == 0 and present.frames(0, 999)[-1] == 999
    assert len(present.frames(0, 999)) == present.PLAY_FRAMES
    assert present.frames(1, 5) == [1, 2, 3, 4, 5] and present.frames(3, 3) == [3]


def test_present_from_the_link_and_leaving_it(tiny_model_dir):
    at = _app(tiny_model_dir)
    at.query_params["present"] = "1"
    at.run()
    assert not at.exception
    assert at.session_state["present"] is True and _css_injected(at)
    assert at.query_params["present"] == "1"
    assert at.sidebar.toggle(key="present").value is True
    at.button(key="present_exit").click().run()
    assert not at.exception
    assert at.session_state["present"] is False and not _css_injected(at)
    assert "present" not in at.query_params
    at.sidebar.toggle(key="present").set_value(True).run()  # and back on from the sidebar's toggle
    assert _css_injected(at) and at.query_params["present"] == "1"


def test_play_on_forward_animates_t_and_ends_with_the_slider_on_the_last_frame(tiny_model_dir, fast_play):
    at = _app(tiny_model_dir, "views/forward.py")
    at.run()
    at.button(key="fwd_play").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["fwd_played"] == present.frames(0, 999)
    assert at.slider(key="fwd_t").value == 999
    assert "x_t at t = 999" in [c for img in at.image for c in img.captions]
    assert at.query_params["t"] == "999"


def test_play_steps_through_a_finished_reverse_run(tiny_model_dir, fast_play):
    at = _app(tiny_model_dir, "views/trajectory.py")
    at.run()
    at.slider(key="traj_steps").set_value(10)
    at.button(key="traj_go").click().run()
    assert not at.exception
    at.button(key="traj_play").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["traj_played"] == list(range(1, 11))
    assert at.slider(key="traj_step").value == 10
    assert any(m.value.startswith("**Step 10 of 10**") for m in at.markdown)


def test_during_play_the_step_slider_follows_the_pictures(tiny_model_dir, fast_play, monkeypatch):
    """Issue 26: during Play the slider stayed at step 1 while the pictures said step 15. Between two frames (the
    pause), the step slider's value is the step whose pictures are shown."""
    import time

    import streamlit as st

    seen = []
    real_sleep = time.sleep

    def pause(seconds):  # the page's pause between two frames, in the script's thread (other threads sleep too)
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        if get_script_run_ctx(suppress_warning=True) is not None and st.session_state.get("traj_playing"):
            shown = st.session_state.get("traj_played") or [None]
            seen.append((st.session_state.get("traj_step"), shown[-1]))
        real_sleep(seconds)

    at = _app(tiny_model_dir, "views/trajectory.py")
    at.run()
    at.slider(key="traj_steps").set_value(10)
    at.button(key="traj_go").click().run()
    monkeypatch.setattr(time, "sleep", pause)
    at.button(key="traj_play").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(seen) >= 9, seen
    assert all(step == shown for step, shown in seen), seen  # slider value == the step on screen
    assert [step for step, _ in seen] == list(range(1, 10))
