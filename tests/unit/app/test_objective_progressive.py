"""The Training objective's progressive computation: partial results that fill in, the same numbers as one call.

The bound estimate and the eps-MSE curve are computed in small cached chunks (app/compute/objective.py) so the page
can show partial charts after the first chunk (issue 20). Checked here: the complete result equals
:func:`model.diffusion.likelihood.estimate_bpd` / :func:`model.diffusion.likelihood.simple_loss_per_t` in one call (the same draws;
only float32 rounding of a different network batch differs), partial items grow, cached chunks are replayed
without the network, and the page shows progress bars and ends with the same charts.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import streamlit as st
import torch
from conftest import APP_ENTRY
from streamlit.testing.v1 import AppTest

from app.compute import core
from app.compute import objective as bo
from model.diffusion import likelihood as lk

T_SHORT = 50
RES = 32


@pytest.fixture(scope="module")
def short_model_dir(tmp_path_factory):
    from model.diffusion.schedule import make_schedule
    from model.nets.checkpoint_io import save_model, tiny_unet

    return save_model(tiny_unet(RES), make_schedule("linear", T=T_SHORT), tmp_path_factory.mktemp("short"))


@pytest.fixture(scope="module")
def net(short_model_dir):
    from model.nets.network import load_model

    return load_model(str(short_model_dir))


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 1, 2, 4, then 8 timesteps at 32 px, so every computation below takes several chunks; the page
    draws every partial result (the tiny model computes a chunk faster than a cached one usually comes)."""
    from app.ui import common

    monkeypatch.setattr(bo, "CHUNK_AT_64", 1)
    monkeypatch.setattr(common, "SLOW_CHUNK_S", 0.0)
    monkeypatch.setattr(common, "REDRAW_S", 0.0)
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def x0() -> torch.Tensor:
    return torch.rand((1, 3, RES, RES), generator=torch.Generator().manual_seed(5)) * 2 - 1


def test_chunks_ramp_up_and_cover_everything():
    sizes = bo.chunk_sizes(64)
    assert [next(sizes) for _ in range(5)] == [2, 4, 8, 16, 16]
    assert bo.chunk_size(256) == 1 and bo.chunk_size(32) == 32
    slices = bo._slices(21, bo.chunk_sizes(64))
    assert [(s.start, s.stop) for s in slices] == [(0, 2), (2, 6), (6, 14), (14, 21)]


def test_bound_steps_fill_in_and_end_equal_to_estimate_bpd(one_torch_thread, small_chunks, net, x0):
    items = list(bo.bound_estimate_steps("img", RES, "m", 3, 12, x0, net))
    assert len(items) > 3
    done = [it["done"] for it in items]
    assert done == sorted(done) and all(it["done"] < it["of"] for it in items[:-1])
    assert items[-1]["done"] == items[-1]["of"] == 13
    for it in items[:-1]:  # a partial item: the terms so far, in evaluation order
        assert len(it["ts"]) == len(it["terms"]) == it["done"]
    g, dec = torch.Generator().manual_seed(3), bo.decoder_generator(3)
    ref = lk.estimate_bpd(net.eps, net.schedule, x0, 12, g, proposal="importance", decoder_generator=dec)
    last = items[-1]
    assert last["ts"] == ref.terms.timesteps.tolist()
    np.testing.assert_allclose(last["terms"], ref.terms.terms_bpd.numpy(), rtol=1e-5, atol=1e-7)
    assert last["total"] == pytest.approx(ref.total_bpd, rel=1e-5)
    assert last["stderr"] == pytest.approx(ref.stderr, rel=1e-4)
    assert last["decoder"] == pytest.approx(ref.decoder_bpd, rel=1e-5)
    assert last["prior"] == pytest.approx(ref.prior_bpd) and last["n"] == 12
    assert bo.bound_estimate("img", RES, "m", 3, 12, x0, net)["total"] == last["total"]  # the one-shot wrapper


def test_eps_mse_steps_fill_in_and_end_equal_to_simple_loss(one_torch_thread, small_chunks, net, x0):
    items = list(bo.eps_mse_steps("img", RES, "m", 4, 3, x0, net))
    ts = bo.mse_timesteps(T_SHORT)
    assert items[0]["draws"] == 1 and len(items[0]["ts"]) < len(ts)  # part of the first draw
    assert [it["draws"] for it in items[-3:]] == [1, 2, 3] and items[-1]["done"] == items[-1]["of"] == 3 * len(ts)
    ref = lk.simple_loss_per_t(net.eps, net.schedule, x0, ts, 3, torch.Generator().manual_seed(4))
    last = items[-1]
    assert last["ts"] == ts
    np.testing.assert_allclose(last["mean"], ref.mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(last["std"], ref.std.numpy(), rtol=1e-4, atol=1e-9)


def test_chunks_are_cached_and_more_draws_reuse_the_first(one_torch_thread, small_chunks, net, x0, monkeypatch):
    list(bo.bound_estimate_steps("img", RES, "m", 3, 12, x0, net))
    list(bo.eps_mse_steps("img", RES, "m", 4, 2, x0, net))
    calls = []
    real = lk.vb_terms, lk.simple_loss_per_t
    monkeypatch.setattr(lk, "vb_terms", lambda *a, **k: calls.append("bound") or real[0](*a, **k))
    monkeypatch.setattr(lk, "simple_loss_per_t", lambda *a, **k: calls.append("mse") or real[1](*a, **k))
    list(bo.bound_estimate_steps("img", RES, "m", 3, 12, x0, net))
    two = list(bo.eps_mse_steps("img", RES, "m", 4, 2, x0, net))
    assert calls == []  # replayed from the cache: no network call
    three = list(bo.eps_mse_steps("img", RES, "m", 4, 3, x0, net))
    assert calls == ["mse", "mse"]  # only the third draw is new: its 15 t in chunks of 8
    assert three[-2]["mean"] == two[-1]["mean"]  # draws 1-2 are the same whatever the number of draws


def _values(v) -> np.ndarray:
    """A Plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (base64) as Plotly 6 writes it."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).astype(float)
    return np.asarray(v, dtype=float)


def _chart(at: AppTest, trace_name: str) -> dict:
    """The chart with a trace whose name starts with ``trace_name`` (titles get reworded for phones)."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if any(str(tr.get("name", "")).startswith(trace_name) for tr in s["data"]))


def test_page_shows_progress_and_ends_with_the_one_shot_charts(
    one_torch_thread, small_chunks, short_model_dir, monkeypatch
):
    texts: list[str] = []
    real = st.progress  # the page calls st.progress (inside its boxes' containers)
    monkeypatch.setattr(st, "progress", lambda value, text=None: texts.append(text) or real(value, text))
    at = AppTest.from_file(APP_ENTRY, default_timeout=180)
    at.session_state["model_source"] = str(short_model_dir)
    at.session_state["resolution"] = RES
    at.session_state["obj_n"] = 20
    at.session_state["obj_draws"] = 2
    at.switch_page("views/objective.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(t and t.startswith("Bound terms at 20 sampled t + L_0: 1/21") for t in texts), texts
    assert any(t and t.startswith("ε-MSE at") for t in texts), texts
    assert not at.get("progress")  # gone once complete
    assert len(at.get("plotly_chart")) == 4
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    from app.ui import common

    monkeypatch.setattr(common, "SLOW_CHUNK_S", 0.05)
    texts.clear()
    at.run()  # the same settings: every chunk comes from the cache, so only the complete result is drawn
    assert texts == [] and [c.proto.spec for c in at.get("plotly_chart")] == charts

    # the complete charts are those of the one-shot computation
    img = at.session_state["sample_name"]
    from app import settings
    from model.images.tensors import load_image
    from model.nets.network import load_model

    # prepared by the server's Serving object, as the page's model is (the same arithmetic: "auto" may pick a
    # faster graph that passes the fidelity guard; a model nobody prepared runs plain fp32)
    net = settings.serving().prepare(load_model(str(short_model_dir)))
    x0 = load_image(core.SAMPLES[img].read_bytes(), RES)
    g, dec = torch.Generator().manual_seed(0), bo.decoder_generator(0)
    ref = lk.estimate_bpd(net.eps, net.schedule, x0, 20, g, proposal="importance", decoder_generator=dec)
    terms = _chart(at, "KL term")
    ys = np.concatenate([_values(tr["y"]) for tr in terms["data"]])
    want = np.sort(np.maximum(ref.terms.terms_bpd.numpy(), 1e-12))
    np.testing.assert_allclose(np.sort(ys), want, rtol=1e-5)
    assert at.metric[0].value == f"{ref.total_bpd:.2f} ± {ref.stderr:.2f}"
    mse = lk.simple_loss_per_t(
        net.eps, net.schedule, x0, bo.mse_timesteps(T_SHORT), 2, torch.Generator().manual_seed(0)
    )
    chart = _chart(at, "± 1 std over")
    line = next(tr for tr in chart["data"] if tr.get("mode") == "lines+markers")
    np.testing.assert_allclose(_values(line["y"]), mse.mean.numpy(), rtol=1e-5)
