"""Cached computations for the "Training objective" page.

Same pattern as :mod:`app.backend`: ``st.cache_data`` keyed on cheap exact keys (image
key = sha256 of the bytes, resolution, model key, seed, counts); the tensors and the
model are ``_``-prefixed arguments so they are not hashed. The model is the shared
read-only one from :func:`app.backend.current_model`; the training step works on a
deep copy (see :func:`model.likelihood.train_step`).

Progress bars are made *inside* the cached functions, so a cache hit replays them at once.
Results are returned as plain lists and floats.
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st
import torch

from app import backend
from model import likelihood as lk
from model.network import LoadedModel

MSE_POINTS = 16  # timesteps in the eps-MSE chart
DEFAULT_DRAWS = 3  # noise draws per timestep in the eps-MSE chart
DEFAULT_SAMPLED_T = 50  # timesteps in the default bound estimate


def model_key() -> str:
    """The model part of a cache key: "bundled" or the folder / Hub id."""
    return backend.model_source() or "bundled"


def mse_timesteps(T: int, points: int = MSE_POINTS) -> list[int]:
    """``points`` indices from 0 to T - 1, denser at small t where the eps-MSE changes fast."""
    u = np.linspace(0.0, 1.0, points)
    ts = np.round((T - 1) * u**2).astype(int)
    return sorted(set(ts.tolist()) | {0, T - 1})


def _bar(text: str):
    bar = st.progress(0.0, text=text)

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{text} {done}/{total}")

    return bar, progress


@st.cache_data(max_entries=32, show_spinner=False)
def eps_mse_curve(
    image_key: str, resolution: int, model: str, seed: int, n_draws: int, _x0: torch.Tensor, _model: LoadedModel
) -> dict:
    """eps-MSE per t over ``n_draws`` draws: ``dict(ts, mean, std, seconds)`` (lists of floats)."""
    ts = mse_timesteps(_model.schedule.T)
    bar, progress = _bar(f"ε-MSE at {len(ts)} values of t × {n_draws} draws:")
    start = time.perf_counter()
    res = lk.simple_loss_per_t(
        _model.eps,
        _model.schedule,
        _x0,
        ts,
        n_draws,
        torch.Generator().manual_seed(seed),
        batch_size=lk.default_batch_size(resolution),
        progress=progress,
    )
    bar.empty()
    return dict(ts=ts, mean=res.mean.tolist(), std=res.std.tolist(), seconds=time.perf_counter() - start)


@st.cache_data(max_entries=32, show_spinner=False)
def bound_estimate(
    image_key: str, resolution: int, model: str, seed: int, n: int, _x0: torch.Tensor, _model: LoadedModel
) -> dict:
    """The bound from ``n`` importance-sampled t plus the exact L_0 (see :func:`model.likelihood.estimate_bpd`).

    :returns: ``dict(total, stderr, decoder, prior, ts, terms, n, seconds, seconds_per_term)``.
    """
    bar, progress = _bar(f"Bound terms at {n} sampled t + L_0:")
    start = time.perf_counter()
    est = lk.estimate_bpd(
        _model.eps,
        _model.schedule,
        _x0,
        n,
        torch.Generator().manual_seed(seed),
        batch_size=lk.default_batch_size(resolution),
        progress=progress,
        proposal="importance",
    )
    bar.empty()
    secs = time.perf_counter() - start
    return dict(
        total=est.total_bpd,
        stderr=est.stderr,
        decoder=est.decoder_bpd,
        prior=est.prior_bpd,
        ts=est.terms.timesteps.tolist(),
        terms=est.terms.terms_bpd.tolist(),
        n=est.n,
        seconds=secs,
        seconds_per_term=secs / (est.n + 1),
    )


@st.cache_data(max_entries=8, show_spinner=False)
def bound_all(image_key: str, resolution: int, model: str, seed: int, _x0: torch.Tensor, _model: LoadedModel) -> dict:
    """Every one of the T terms (improved-diffusion's ``calc_bpd_loop``).

    :returns: ``dict(total, decoder, prior, ts, terms, eps_mse, seconds)``, ts = T-1 .. 0.
    """
    bar, progress = _bar(f"All {_model.schedule.T} terms of the bound:")
    start = time.perf_counter()
    res = lk.vb_terms(
        _model.eps,
        _model.schedule,
        _x0,
        None,
        torch.Generator().manual_seed(seed),
        batch_size=lk.default_batch_size(resolution),
        progress=progress,
    )
    bar.empty()
    return dict(
        total=res.total_bpd,
        decoder=float(res.terms_bpd[res.timesteps == 0][0]),
        prior=res.prior_bpd,
        ts=res.timesteps.tolist(),
        terms=res.terms_bpd.tolist(),
        eps_mse=res.eps_mse.tolist(),
        seconds=time.perf_counter() - start,
    )


@st.cache_data(max_entries=128, show_spinner=False)
def codecs(image_key: str, resolution: int, _x0: torch.Tensor) -> dict[str, float]:
    """Bits/dim of the PNG and JPEG (quality 90) files of the same 8-bit picture."""
    return lk.codec_bpd(_x0)


@st.cache_data(max_entries=32, show_spinner=False)
def train_step(
    image_key: str, resolution: int, model: str, seed: int, lr: float, _x0: torch.Tensor, _model: LoadedModel
) -> dict:
    """One Adam step of L_simple on a copy of the model: ``dict(before, after, ts, grad_norm, seconds)``."""
    start = time.perf_counter()
    with st.spinner("One training step on a private copy of the model…"):
        r = lk.train_step(_model.unet, _model.schedule, _x0, torch.Generator().manual_seed(seed), batch_size=4, lr=lr)
    return dict(
        before=r.loss_before,
        after=r.loss_after,
        ts=r.timesteps.tolist(),
        grad_norm=r.grad_norm,
        target=r.target,
        seconds=time.perf_counter() - start,
    )
