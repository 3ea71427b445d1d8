"""Long runs are fair (issue 28, item 3): they take turns in a lane of their own that leaves an inference slot to
the slider steps, one per session, and they stop when their session's tab is closed (app/server/lanes.py)."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import streamlit as st

from app import settings
from app.compute import reverse as backend_reverse
from app.server import admission, lanes
from model.nets import network

RES = 32


@pytest.fixture
def fresh(monkeypatch, server_env):
    """Two inference slots (the default), a fresh lane, empty caches."""
    server_env(lanes.ENV_SLOTS, None)
    server_env("DIFFUSION_LENS_CONCURRENCY", "2")
    lanes.reset()
    st.cache_data.clear()
    yield
    st.cache_data.clear()
    lanes.reset()


def _until(condition, timeout_s: float = 30.0) -> None:
    """Poll ``condition()`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


@pytest.fixture
def passes(monkeypatch):
    """Every forward pass takes at least 20 ms; counts them and the most running at once. With ``seen["gate"]`` (an
    Event) set up, each pass waits for it (up to 30 s, counted in ``seen["gate_timeouts"]``) while holding its slot."""
    seen = {"n": 0, "now": 0, "peak": 0, "after": None, "gate": None, "gate_timeouts": 0}
    lock = threading.Lock()
    real = network.LoadedModel._network

    def slow(self, x, t, y):
        with lock:
            seen["n"] += 1
            seen["now"] += 1
            seen["peak"] = max(seen["peak"], seen["now"])
            hook, gate = seen["after"], seen["gate"]
        try:
            if gate is not None and not gate.wait(30):
                seen["gate_timeouts"] += 1
            time.sleep(0.02)
            return real(self, x, t, y)
        finally:
            with lock:
                seen["now"] -= 1
            if hook:
                hook(seen["n"])

    monkeypatch.setattr(network.LoadedModel, "_network", slow)
    return seen


def _served(folder) -> network.LoadedModel:
    """A model whose passes go through the server's inference queue, as the app's models do."""
    return dataclasses.replace(network.load_model(str(folder)), serving=settings.serving())


def _run(net, seed: int, steps: int = 12):
    return backend_reverse.trajectory(None, RES, "m", net.schedule.T - 1, "ddim", 0.0, steps, seed, None, net)


def test_long_runs_leave_an_inference_slot_to_slider_steps(fresh, passes, tiny_model_dir, one_torch_thread):
    net = _served(tiny_model_dir)
    runs = []
    gate = passes["gate"] = threading.Event()  # the first pass holds its slot until the slider step is done
    threads = [threading.Thread(target=lambda i=i: runs.append(_run(net, i))) for i in range(4)]
    for th in threads:
        th.start()
    try:
        _until(lambda: passes["now"] == 1)  # a long run is in a pass, holding an inference slot
        with settings.serving().queue.slot():  # a student's slider step meanwhile: one pass through the queue
            during = (passes["now"], passes["gate_timeouts"])
    finally:
        gate.set()
    for th in threads:
        th.join(60)
    assert during == (1, 0)  # the slider step got the other slot while the long run held its own
    assert len(runs) == 4 and all(len(run.frames) > 0 for run, _ in runs)
    assert passes["n"] == 4 * 12
    assert passes["peak"] == 1  # four long runs, two slots: the runs had one, in turns (b5ab46d: both)


def test_a_run_stops_at_its_next_step_when_its_tab_closes(fresh, passes, tiny_model_dir, one_torch_thread, monkeypatch):
    net = _served(tiny_model_dir)
    alive = {"tab-1": True}
    monkeypatch.setattr(lanes, "current_session_id", lambda: "tab-1")
    monkeypatch.setattr(lanes, "session_alive", lambda sid: alive[sid])
    passes["after"] = lambda n: alive.update({"tab-1": n < 5})  # the student closes the tab after 5 steps
    with pytest.raises(lanes.RunCancelled, match="tab was closed") as info:
        _run(net, 0, steps=40)
    assert passes["n"] == 5  # not 40
    assert str(info.value).endswith(".") and "\n" not in str(info.value)
    assert lanes.stats()["cancelled"] == 1 and lanes.running() == 0


def test_a_new_run_of_a_session_cancels_its_previous_one(fresh):
    def steps(n):
        for i in range(n):
            time.sleep(0.01)  # a step's work
            yield i

    first_out, errors = [], []

    def first():
        try:
            with lanes.long_run("reverse run", session_id="tab-1") as run:
                first_out.extend(lanes.paced(steps(500), run))
        except lanes.RunCancelled as exc:
            errors.append(str(exc))

    th = threading.Thread(target=first, daemon=True)
    th.start()
    _until(lambda: len(first_out) >= 1)  # the first run is registered and stepping
    with lanes.long_run("reverse run", session_id="tab-1") as run:
        second = list(lanes.paced(steps(5), run))
    th.join(10)
    assert second == list(range(5))
    assert not th.is_alive() and errors and "newer run of the same session" in errors[0]
    assert len(first_out) < 500
    with lanes.long_run("reverse run", session_id="tab-2") as other:  # another session is left alone
        assert list(lanes.paced(steps(3), other)) == [0, 1, 2]


def test_lane_slots_follow_the_inference_slots_and_the_environment(fresh, monkeypatch, server_env):
    assert admission.long_run_slots() == 1
    server_env("DIFFUSION_LENS_CONCURRENCY", "4")
    assert admission.long_run_slots() == 3
    server_env(lanes.ENV_SLOTS, "2")
    assert admission.long_run_slots() == 2
    server_env(lanes.ENV_SLOTS, "many")  # a value it cannot use: one sentence naming the variable
    with pytest.raises(settings.SettingsError, match=f"{lanes.ENV_SLOTS}='many' cannot be used: it accepts a whole"):
        admission.long_run_slots()
