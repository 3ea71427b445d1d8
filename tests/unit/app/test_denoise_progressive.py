"""Denoise one step's sweep over t, chunk by chunk (app.compute.core.sweep_steps): the same numbers as one pass per
t, coarse points first and the rest only while the server is idle (issue 38), a partial chart with a progress bar
while it runs, and one draw on a cached rerun."""

from __future__ import annotations

import json

import numpy as np
import pytest
import streamlit as st
import torch
from conftest import APP_ENTRY
from streamlit.testing.v1 import AppTest

from app.compute import core, reverse
from app.server import admission
from app.ui import common

RES = 32


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 2 t at 32 px (instead of all 40 at once), and every partial result drawn."""
    monkeypatch.setattr(core, "SWEEP_CHUNK_AT_256", 2 / 64)
    monkeypatch.setattr(common, "SLOW_CHUNK_S", 0.0)
    monkeypatch.setattr(common, "REDRAW_S", 0.0)
    st.cache_data.clear()
    core._chunk_store.clear()
    yield
    st.cache_data.clear()
    core._chunk_store.clear()


def test_chunk_size_scales_with_pixels():
    assert core.sweep_chunk_size(256) == core.SWEEP_CHUNK_AT_256
    assert core.sweep_chunk_size(128) == 4 * core.SWEEP_CHUNK_AT_256
    assert core.sweep_chunk_size(32) == 40


def test_sweep_steps_fill_in_and_equal_the_one_shot_sweep(one_torch_thread, small_chunks, tiny_model_dir):
    from model.diffusion.forward import q_sample
    from model.images.figure import psnr
    from model.nets.network import load_model

    net = load_model(str(tiny_model_dir))
    x0 = torch.rand((1, 3, RES, RES), generator=torch.Generator().manual_seed(2)) * 2 - 1
    items = list(core.sweep_steps("img", RES, "m", 7, x0, net))
    # the 10 coarse t in chunks of 2, then the other 30 in chunks of a quarter of that (1)
    assert [it["done"] for it in items] == [2, 4, 6, 8, 10, *range(11, 41)] and items[-1]["of"] == 40
    assert all(it["ts"] == sorted(it["ts"]) and len(it["ts"]) == len(it["mse"]) == it["done"] for it in items)
    # the reference: one t at a time, eq. 4 with Denoise's fixed noise, the network's eps_hat and x0_hat
    ts = reverse.sweep_timesteps(net.schedule.T)
    eps = reverse.fixed_noise(x0, 7)
    mse, ps = [], []
    with torch.inference_mode():
        for t in ts:
            tt = torch.tensor([t])
            x_t, _ = q_sample(net.schedule, x0, tt, noise=eps)
            eps_hat, x0_hat = net.predict(x_t, tt, None)
            mse.append(float((eps_hat - eps).square().mean()))
            ps.append(psnr(x0_hat, x0))
    assert items[-1]["ts"] == ts
    np.testing.assert_allclose(items[-1]["mse"], mse, rtol=1e-4)
    np.testing.assert_allclose(items[-1]["psnr"], ps, rtol=1e-4)


def test_page_shows_the_partial_sweep_then_draws_it_once(one_torch_thread, small_chunks, tiny_model_dir, monkeypatch):
    texts: list[str] = []
    real = st.progress
    monkeypatch.setattr(st, "progress", lambda value, text=None: texts.append(text) or real(value, text))
    at = AppTest.from_file(APP_ENTRY, default_timeout=180)
    at.session_state["model_source"] = str(tiny_model_dir)
    at.session_state["resolution"] = RES
    at.switch_page("views/denoise.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Sweeping t: 2/40" in texts and not at.get("progress")
    (chart,) = at.get("plotly_chart")
    spec = json.loads(chart.proto.spec)
    assert len(spec["data"][0]["x"]) == 40 or spec["data"][0]["x"]["bdata"]  # the complete sweep
    assert any("40 values of t" in c.value for c in at.caption)
    monkeypatch.setattr(common, "SLOW_CHUNK_S", 0.05)
    texts.clear()
    at.slider(key="den_t").set_value(100).run()  # the sweep comes from the cache: drawn once, no progress
    assert not at.exception and texts == [] and len(at.get("plotly_chart")) == 1


def test_the_coarse_points_are_spread_over_the_sweep():
    coarse, fine = core.sweep_plan(1000)
    everything = reverse.sweep_timesteps(1000)
    assert len(coarse) == core.COARSE_POINTS and coarse[0] == 0 and coarse[-1] == 999
    assert sorted(coarse + fine) == everything and not set(coarse) & set(fine)
    gaps = [b - a for a, b in zip(coarse, coarse[1:], strict=False)]
    assert max(gaps) <= 1.3 * min(gaps)  # evenly spread, not bunched at one end


def test_a_busy_server_keeps_the_coarse_points_and_a_quiet_moment_fills_in_the_rest(
    one_torch_thread, small_chunks, tiny_model_dir, monkeypatch
):
    from model.nets.network import load_model

    net = load_model(str(tiny_model_dir))
    x0 = torch.rand((1, 3, RES, RES), generator=torch.Generator().manual_seed(3)) * 2 - 1
    passes = []  # the t of every chunk computed (each computed chunk is stored once)
    real = core._ChunkStore.put
    monkeypatch.setattr(
        core._ChunkStore, "put", lambda self, key, value: passes.append(len(key[4])) or real(self, key, value)
    )
    busy = list(core.sweep_steps("img", RES, "m", 7, x0, net, refine=lambda: False))
    assert busy[-1]["done"] == core.COARSE_POINTS and busy[-1]["of"] == 40 and sum(passes) == 10
    asked = []
    some = list(core.sweep_steps("img", RES, "m", 7, x0, net, refine=lambda: asked.append(1) or len(asked) <= 5))
    assert some[-1]["done"] == 15 and sum(passes) == 15  # the coarse chunks from the store, then 5 new ones
    again_busy = list(core.sweep_steps("img", RES, "m", 7, x0, net, refine=lambda: False))
    assert again_busy[-1]["done"] == 15 and sum(passes) == 15  # every chunk done shows, nothing computed
    quiet = list(core.sweep_steps("img", RES, "m", 7, x0, net))
    assert quiet[-1]["done"] == 40 and sum(passes) == 40  # each t computed once in all


def test_the_server_is_idle_only_with_no_waiter_and_no_sweep_chunk(server_env):
    server_env("DIFFUSION_LENS_CONCURRENCY", "2")
    admission.sweep_lane.clear()
    try:
        assert admission.idle()
        with admission.sweep_lane():  # another student's chunk running
            assert not admission.idle()
        assert admission.idle()
    finally:
        admission.sweep_lane.clear()


def test_another_session_s_recent_pass_means_not_idle(server_env):
    """Idle is a quiet moment: just after another session's pass the refinement waits; the caller's own pass (its
    step's pictures) does not stop it."""
    import threading

    from app import settings

    server_env("DIFFUSION_LENS_CONCURRENCY", "2")
    admission.sweep_lane.clear()
    queue = settings.serving().queue.semaphore
    try:
        with queue:  # this session's own pass
            pass
        assert admission.idle()
        th = threading.Thread(target=lambda: queue.acquire() and queue.release())
        th.start()
        th.join()
        assert not admission.idle()  # another student's pass, just now
    finally:
        admission.sweep_lane.clear()


def test_a_busy_server_shows_the_partial_sweep_and_says_why(
    one_torch_thread, small_chunks, tiny_model_dir, monkeypatch
):
    monkeypatch.setattr(admission, "idle", lambda: False)
    at = AppTest.from_file(APP_ENTRY, default_timeout=180)
    at.session_state["model_source"] = str(tiny_model_dir)
    at.session_state["resolution"] = RES
    at.switch_page("views/denoise.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.get("progress")
    assert any("10 of 40 values of t so far" in c.value for c in at.caption)


@pytest.mark.parametrize(("slots", "lane"), [(1, 1), (2, 2), (4, 4)])
def test_sweep_lane_has_one_chunk_per_slot(server_env, slots, lane):
    """At most one sweep chunk per inference slot is queued or running: a slider step's single pass never queues
    behind more than the chunks already running."""
    server_env("DIFFUSION_LENS_CONCURRENCY", str(slots))
    admission.sweep_lane.clear()
    try:
        assert admission.sweep_lane().size == lane
        assert admission.sweep_lane() is admission.sweep_lane()  # one lane per process
    finally:
        admission.sweep_lane.clear()
