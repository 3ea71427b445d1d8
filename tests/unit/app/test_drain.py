"""The drain before a restart (issue 28, item 7; app/server/drain.py): long runs in progress finish, new ones are refused,
then the server stops. The real signal and the students' pages: tests/e2e/test_restart_notice.py."""

from __future__ import annotations

import threading
import time

import pytest

from app.server import drain, lanes


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    lanes.reset()
    monkeypatch.setitem(drain._state, "draining_since", None)
    monkeypatch.setattr(drain, "NOTICE_S", 0.0)
    yield
    lanes.reset()


def _until(condition, timeout_s: float = 10.0) -> None:
    """Poll ``condition()`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def _slow_run(session: str, steps: int, out: list, gate: threading.Event | None = None) -> threading.Thread:
    """A long run of ``steps`` steps in a thread; with ``gate``, it stops half-way until the gate opens."""

    def body():
        def gen():
            for i in range(steps):
                if gate is not None and i == steps // 2:
                    gate.wait(30)
                yield i

        try:
            with lanes.long_run("reverse run", session_id=session) as run:
                out.extend(lanes.paced(gen(), run))
        except lanes.RunCancelled as exc:
            out.append(str(exc))

    th = threading.Thread(target=body)
    th.start()
    return th


def test_a_run_in_progress_finishes_before_the_server_stops():
    done: list = []
    gate = threading.Event()
    th = _slow_run("tab-1", 60, done, gate)  # held half-way until the drain has begun
    _until(lambda: len(done) == 30)
    opener = threading.Thread(target=lambda: (_until(drain.draining), gate.set()))
    opener.start()
    stopped_at = []
    report = drain.drain(lambda: stopped_at.append(len(done)), wait_s=30, poll_s=0.01)
    th.join(5)
    opener.join(5)
    assert stopped_at == [60]  # the run had all its steps when the server stopped
    assert report["runs_at_start"] == 1 and report["runs_left"] == 0
    assert drain.draining()


def test_the_wait_is_bounded():
    done: list = []
    gate = threading.Event()
    th = _slow_run("tab-1", 10, done, gate)  # cannot finish before the gate opens, after the drain
    _until(lambda: len(done) == 5)
    report = drain.drain(lambda: None, wait_s=0.3, poll_s=0.01)
    assert report["runs_left"] == 1 and report["seconds"] >= 0.3  # gave up on the run after wait_s
    lanes.refuse_new("x")
    for runs in list(lanes._runs.values()):
        for run in runs:
            run.cancel("the test is over")
    gate.set()
    th.join(5)
    assert not th.is_alive() and done[-1] == "The reverse run stopped because the test is over."


def test_no_new_run_starts_while_draining():
    drain.drain(lambda: None, wait_s=0)
    out: list = []
    _slow_run("tab-2", 5, out).join(5)
    assert out == ["The reverse run stopped because the server is restarting."]


def test_the_notice_is_one_sentence():
    assert drain.MESSAGE.count(". ") == 0 and drain.MESSAGE.endswith(".")
    assert "restarting" in drain.MESSAGE


def test_install_needs_a_running_server():
    assert drain.install() is False  # no Streamlit server in this process: SIGTERM keeps its default
