"""Denoise one step's sweep over t, chunk by chunk (app.compute.core.sweep_steps): the same numbers as the one-shot
``app.compute.reverse.sweep``, a partial chart with a progress bar while it runs, and one draw on a cached rerun."""

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
    yield
    st.cache_data.clear()


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
    assert [it["done"] for it in items] == list(range(2, 41, 2)) and items[-1]["of"] == 40
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
