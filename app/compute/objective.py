"""Cached computations for the "Training objective" page.

Same pattern as :mod:`app.compute.core`: ``st.cache_data`` keyed on cheap exact keys (image
key = sha256 of the bytes, resolution, model key, seed, counts); the tensors and the
model are ``_``-prefixed arguments so they are not hashed. The model is the shared
read-only one from :func:`app.session.which_model.current_model`; the training step works on a
deep copy (see :func:`model.diffusion.likelihood.train_step`).

The bound estimate and the eps-MSE curve are computed in small cached chunks
(:func:`bound_estimate_steps`, :func:`eps_mse_steps`): the page draws each partial result, with its
own progress bar, as it comes. The all-terms bound and the training step make their progress bar or
spinner *inside* the cached function, so a cache hit replays it at once.
Results are returned as plain lists and floats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import streamlit as st
import torch

from app.compute.progress import Progress, reporter
from model.diffusion import likelihood as lk
from model.diffusion import vlb_terms
from model.diffusion.forward import q_sample as q_sample
from model.nets.network import LoadedModel

MSE_POINTS = 16  # timesteps in the eps-MSE chart
DEFAULT_DRAWS = 3  # noise draws per timestep in the eps-MSE chart
DEFAULT_SAMPLED_T = 50  # timesteps in the default bound estimate
CHUNK_AT_64 = 8  # timesteps per progressive chunk at 64 px (scaled by pixel count): about 0.2-0.4 s on 2 cores


def mse_timesteps(T: int, points: int = MSE_POINTS) -> list[int]:
    """``points`` indices from 0 to T - 1, denser at small t where the eps-MSE changes fast."""
    u = np.linspace(0.0, 1.0, points)
    ts = np.round((T - 1) * u**2).astype(int)
    return sorted(set(ts.tolist()) | {0, T - 1})


def _counter(text: str, progress: Progress | None):
    """``progress`` as a (done, total) callback, each report saying ``text done/total``."""
    report = reporter(progress)
    report(0.0, text)

    def count(done: int, total: int) -> None:
        report(min(1.0, done / max(total, 1)), f"{text} {done}/{total}")

    return count


def eps_mse_curve(
    image_key: str, resolution: int, model: str, seed: int, n_draws: int, _x0: torch.Tensor, _model: LoadedModel
) -> dict:
    """eps-MSE per t over ``n_draws`` draws: ``dict(ts, mean, std, seconds)`` (lists of floats), in one go.

    The last item of :func:`eps_mse_steps` (whose chunks are cached); the page draws the items as they come.
    """
    *_, last = eps_mse_steps(image_key, resolution, model, seed, n_draws, _x0, _model)
    return last


def bound_estimate(
    image_key: str, resolution: int, model: str, seed: int, n: int, _x0: torch.Tensor, _model: LoadedModel
) -> dict:
    """The bound from ``n`` importance-sampled t plus the exact L_0 (see :func:`model.diffusion.likelihood.estimate_bpd`).

    The last item of :func:`bound_estimate_steps` (whose chunks are cached); the page draws the items as they come.
    :returns: ``dict(total, stderr, decoder, prior, ts, terms, n, seconds, seconds_per_term)``.
    """
    *_, last = bound_estimate_steps(image_key, resolution, model, seed, n, _x0, _model)
    return last


def decoder_generator(seed: int) -> torch.Generator:
    """The source of L_0's one noise draw of x_1: its own generator, seeded by the page's seed alone, so the
    estimate and "Compute all terms" show the same L_0 (they draw every other t in different orders). Offset by
    2**32 (page seeds stay below 2**31) so x_1's noise is not the first draw of the other terms' stream."""
    return torch.Generator().manual_seed(seed + 2**32)


@st.cache_data(max_entries=8, show_spinner=False)
def bound_all(
    image_key: str,
    resolution: int,
    model: str,
    seed: int,
    _x0: torch.Tensor,
    _model: LoadedModel,
    _progress: Progress | None = None,
) -> dict:
    """Every one of the T terms (improved-diffusion's ``calc_bpd_loop``).

    :returns: ``dict(total, decoder, prior, ts, terms, eps_mse, seconds)``, ts = T-1 .. 0.
    """
    progress = _counter(f"All {_model.schedule.T} terms of the bound:", _progress)
    start = time.perf_counter()
    res = lk.vb_terms(
        _model.eps,
        _model.schedule,
        _x0,
        None,
        torch.Generator().manual_seed(seed),
        batch_size=vlb_terms.default_batch_size(resolution),
        progress=progress,
        decoder_generator=decoder_generator(seed),
    )
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
    r = lk.train_step(_model.unet, _model.schedule, _x0, torch.Generator().manual_seed(seed), batch_size=4, lr=lr)
    return dict(
        before=r.loss_before,
        after=r.loss_after,
        ts=r.timesteps.tolist(),
        grad_norm=r.grad_norm,
        target=r.target,
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------------------------
# Progressive versions: the same numbers, computed in small cached chunks, so the page can
# draw partial charts that fill in (issue 20: no first visit waits more than 2 s for its charts).
# ---------------------------------------------------------------------------------


def chunk_size(resolution: int) -> int:
    """Timesteps per progressive chunk: :data:`CHUNK_AT_64` at 64 px, scaled by pixel count (at least 1)."""
    return int(max(1, round(CHUNK_AT_64 * (64 / resolution) ** 2)))


def chunk_sizes(resolution: int) -> Iterator[int]:
    """Sizes of the successive chunks: small first, so the first partial chart comes quickly (a quarter, a half,
    then one :func:`chunk_size`), then twice that, so the later ones redraw the charts less often."""
    size = chunk_size(resolution)
    yield from (max(1, size // 4), max(1, size // 2), size)
    while True:
        yield 2 * size


def _slices(n: int, sizes: Iterator[int]) -> list[slice]:
    """Consecutive slices of range(n) whose lengths are taken from ``sizes`` (the last one may be shorter)."""
    out, a = [], 0
    while a < n:
        b = min(n, a + next(sizes))
        out.append(slice(a, b))
        a = b
    return out


@st.cache_data(max_entries=1024, show_spinner=False)
def _chunk(
    image_key: str,
    resolution: int,
    model: str,
    seed: int,
    kind: str,
    count: int,
    k: int,
    ts: tuple[int, ...],
    _x0: torch.Tensor,
    _model: LoadedModel,
    _state: torch.Tensor,
) -> dict:
    """Chunk ``k`` of a progressive computation: the network at the timesteps ``ts``, one noise draw each.

    ``kind`` is "bound" (:func:`model.diffusion.likelihood.vb_terms`) or "mse" (:func:`model.diffusion.likelihood.simple_loss_per_t`,
    one draw); ``count`` is the bound's n (0 for "mse"). ``_state`` is the generator's state before
    this chunk, which the key (seed, kind, count, k) determines, so it is not hashed. Both library functions draw
    their noise one timestep at a time, so chunk after chunk with the carried state draws exactly the noise of one
    call over all the timesteps (only the network's batch size differs: float32 rounding). :returns: ``dict(values, eps_mse, prior, state, seconds)``, ``state`` after it.
    """
    g = torch.Generator()
    g.set_state(_state)
    start = time.perf_counter()
    bs = max(1, len(ts))
    if kind == "bound":
        res = lk.vb_terms(
            _model.eps, _model.schedule, _x0, list(ts), g, batch_size=bs, decoder_generator=decoder_generator(seed)
        )
        out = dict(values=res.terms_bpd.tolist(), eps_mse=res.eps_mse.tolist(), prior=res.prior_bpd)
    else:
        res = lk.simple_loss_per_t(_model.eps, _model.schedule, _x0, list(ts), 1, g, batch_size=bs)
        out = dict(values=res.values[0].tolist(), eps_mse=[], prior=0.0)
    return dict(out, state=g.get_state(), seconds=time.perf_counter() - start)


def bound_estimate_steps(
    image_key: str, resolution: int, model: str, seed: int, n: int, x0: torch.Tensor, net: LoadedModel
) -> Iterator[dict]:
    """:func:`bound_estimate` chunk by chunk: yields ``dict(ts, terms, prior, done, of, seconds)`` after each
    chunk (ts in evaluation order: the sampled t, largest first, then 0), and last the complete result with the
    keys of :func:`bound_estimate` and ``done == of``.

    The same draws as :func:`model.diffusion.likelihood.estimate_bpd` with ``proposal="importance"``: the generator draws
    the timesteps, then one noise per timestep in order; the total is L_0 + mean(L_t / p(t)) + L_T.
    """
    sched = net.schedule
    g = torch.Generator().manual_seed(seed)
    if sched.T < 2:
        ts, sampled, p = [0], None, None
    else:
        n = max(2, int(n))
        p = lk.proposal_probs(sched, "importance")
        sampled = (torch.multinomial(p, n, replacement=True, generator=g) + 1).sort(descending=True).values
        ts = sampled.tolist() + [0]
    state, terms, seconds, prior = g.get_state(), [], 0.0, 0.0
    for k, sl in enumerate(_slices(len(ts), chunk_sizes(resolution))):
        c = _chunk(image_key, resolution, model, seed, "bound", n, k, tuple(ts[sl]), x0, net, state)
        state, seconds, prior = c["state"], seconds + c["seconds"], c["prior"]
        terms += c["values"]
        if len(terms) < len(ts):  # the complete result follows
            yield dict(
                ts=ts[: len(terms)], terms=list(terms), prior=prior, done=len(terms), of=len(ts), seconds=seconds
            )
    decoder = float(terms[-1])
    if sampled is None:
        total, stderr, n_used = decoder + prior, 0.0, 0
    else:
        ratios = torch.tensor(terms[:-1], dtype=torch.float64) / p[sampled - 1]
        total = decoder + float(ratios.mean()) + prior
        stderr, n_used = float(ratios.std(unbiased=True)) / math.sqrt(n), n
    yield dict(
        total=total,
        stderr=stderr,
        decoder=decoder,
        prior=prior,
        ts=ts,
        terms=terms,
        n=n_used,
        seconds=seconds,
        seconds_per_term=seconds / (n_used + 1),
        done=len(ts),
        of=len(ts),
    )


def eps_mse_steps(
    image_key: str, resolution: int, model: str, seed: int, n_draws: int, x0: torch.Tensor, net: LoadedModel
) -> Iterator[dict]:
    """:func:`eps_mse_curve` chunk by chunk: yields ``dict(ts, mean, std, draws, done, of, seconds)`` after each
    chunk, over the draws complete so far (the first yield has part of draw 1: its ts are those done), and last
    the complete curve. Draw-major, as :func:`model.diffusion.likelihood.simple_loss_per_t`: draw 1 at every t, then draw 2…
    """
    ts = mse_timesteps(net.schedule.T)
    n_draws = max(1, int(n_draws))
    state = torch.Generator().manual_seed(seed).get_state()
    rows: list[list[float]] = []
    seconds, k, sizes = 0.0, 0, chunk_sizes(resolution)
    for _ in range(n_draws):
        row: list[float] = []
        for sl in _slices(len(ts), sizes):
            # count 0: draw d is the same whatever the number of draws (draw-major), so more draws reuse the first
            c = _chunk(image_key, resolution, model, seed, "mse", 0, k, tuple(ts[sl]), x0, net, state)
            state, seconds, k = c["state"], seconds + c["seconds"], k + 1
            row += c["values"]
            if not rows and len(row) < len(ts):  # part of the first draw: the points done so far
                yield dict(ts=ts[: len(row)], mean=list(row), std=[0.0] * len(row), draws=1, done=len(row),
                           of=len(ts) * n_draws, seconds=seconds)  # fmt: skip
        rows.append(row)
        values = np.array(rows)
        std = values.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(len(ts))
        yield dict(ts=ts, mean=values.mean(axis=0).tolist(), std=std.tolist(), draws=len(rows),
                   done=len(ts) * len(rows), of=len(ts) * n_draws, seconds=seconds)  # fmt: skip
