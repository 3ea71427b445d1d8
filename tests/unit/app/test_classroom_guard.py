"""Issue 32 in-process: the clear_cache guard (app/server/guard.py), the training queue's one place per browser, and who
presents (app/ui/present.py). The same behaviours against a real server: tests/e2e/test_classroom_guard.py."""

from __future__ import annotations

import pytest
import streamlit as st
from conftest import app_test, assert_ok

from app.server import guard
from app.server.admission import BUSY, BrowserBusy, TrainingQueue
from app.ui import present, reveal


# --- clear_cache ----------------------------------------------------------------------------------------------------
class _Session:
    """What the handler touches of Streamlit's AppSession."""

    id = "test-session"

    def __init__(self) -> None:
        self._session_state = {"x": 1}


@pytest.fixture
def guarded():
    from streamlit.runtime.app_session import AppSession

    before = AppSession._handle_clear_cache_request
    guard.install()
    guard.install()  # idempotent: the entry calls it on every run
    yield AppSession
    AppSession._handle_clear_cache_request = before


def test_a_browser_clear_cache_empties_nothing(guarded, server_env):
    server_env(guard.ALLOW_CLEAR_ENV, None)
    calls = []

    @st.cache_data
    def cached(x: int) -> int:
        calls.append(x)
        return x

    cached(1)
    session = _Session()
    guarded._handle_clear_cache_request(session)
    cached(1)
    assert calls == [1] and session._session_state == {"x": 1}
    assert getattr(guarded, guard.ORIGINAL_ATTR) is not guarded._handle_clear_cache_request


def test_the_operator_may_allow_it(guarded, server_env):
    server_env(guard.ALLOW_CLEAR_ENV, "1")
    calls = []

    @st.cache_data
    def cached(x: int) -> int:
        calls.append(x)
        return x

    cached(2)
    session = _Session()
    guarded._handle_clear_cache_request(session)
    cached(2)
    assert calls == [2, 2] and session._session_state == {}


def test_the_tally_is_no_streamlit_cache():
    """Even the operator's clear leaves the class's votes: the tally is the module's own object."""
    reveal.tally().vote("q-guard", "voter", "A")
    st.cache_data.clear()
    st.cache_resource.clear()
    assert reveal.tally().counts("q-guard") == {"A": 1}
    reveal.tally().reset("q-guard")


# --- the training queue: one place per browser ------------------------------------------------------------------
def test_a_browser_holds_one_place_whatever_its_tabs():
    q = TrainingQueue(1)
    running = q.join("browser-a")
    assert q.wait(running, 0.1)
    for _ in range(11):  # eleven more tabs of the same browser press Train
        with pytest.raises(BrowserBusy, match="already queued or running"):
            q.join("browser-a")
    honest = q.join("browser-b")
    assert q.ahead(honest) == 0 and q.waiting == 1  # nobody of browser a's tabs in front
    q.done(running)
    again = q.join("browser-a")  # its training finished: browser a may queue again, behind b
    assert q.ahead(again) == 1
    q.leave(honest)
    assert q.ahead(again) == 0
    assert q.join("browser-b")  # leaving gave b's place back


def test_the_refusal_is_one_sentence_the_page_shows():
    assert issubclass(BrowserBusy, ValueError)  # the page shows a ValueError's text as a warning
    assert BUSY.count(".") <= 1 and BUSY.endswith(".")


# --- who presents ------------------------------------------------------------------------------------------------
def _counts(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**The class's answers**")]


def test_only_the_key_makes_a_presenter(tiny_model_dir, server_env):
    server_env(present.PRESENTER_ENV, "a-long-random-key")
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.query_params["present"] = "1"
    at.run()
    assert_ok(at)
    assert not _counts(at) and not [b for b in at.button if b.key and b.key.startswith("reveal_reset")]
    at.text_input(key=present.KEY_BOX).input("a-wrong-guess").run()
    assert not _counts(at) and any("not this server's presenter key" in w.value for w in at.warning)
    at.text_input(key=present.KEY_BOX).input("a-long-random-key").run()
    assert _counts(at) and at.session_state[present.PRESENTER_STATE] is True
    assert not [t for t in at.text_input if t.key == present.KEY_BOX]  # the box is gone once presenting


def test_without_a_key_a_server_others_reach_shows_the_counts_to_nobody(tiny_model_dir, server_env):
    server_env(present.PRESENTER_ENV, None)
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.query_params["present"] = "1"
    at.run()
    assert_ok(at)
    assert not _counts(at)
    assert any(present.PRESENTER_ENV in c.value for c in at.caption)
