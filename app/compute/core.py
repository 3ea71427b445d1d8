"""The shared computations: the sample photos, image tensors, the forward process and Denoise's sweep over t.

* ``st.cache_resource`` holds the read-only model and schedules (shared by all sessions).
* ``st.cache_data`` holds results, keyed on cheap exact keys: the sha256 of the image
  bytes (``image_key``), the resolution, t, seed, schedule/model name. Arguments whose
  name starts with ``_`` (the tensors themselves) are not hashed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import streamlit as st
import torch

from app.server import admission, uploads
from model.diffusion import forward
from model.diffusion.schedule import Schedule, make_schedule
from model.images import figure
from model.images.decode import ImageLoadError
from model.images.tensors import picture_to_x0
from model.nets import network

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
SAMPLES: dict[str, Path] = {
    "astronaut": ASSETS / "astronaut.jpg",
    "coffee": ASSETS / "coffee.jpg",
    "chelsea": ASSETS / "chelsea.jpg",
    "rocket": ASSETS / "rocket.jpg",
    # Fashion-MNIST test images (grey, 32 px), the natural inputs of the Fashion generator
    "sneaker": ASSETS / "fashion-sneaker.png",
    "dress": ASSETS / "fashion-dress.png",
    "bag": ASSETS / "fashion-bag.png",
    "t-shirt": ASSETS / "fashion-t-shirt.png",
}
PHOTO_SAMPLES = ("astronaut", "coffee", "chelsea", "rocket")
FASHION_SAMPLES = ("sneaker", "dress", "bag", "t-shirt")
RESOLUTIONS = (32, 48, 64, 96, 128, 160, 192, 224, 256)


def digest(data: bytes) -> str:
    """The cache key of an image: sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


@st.cache_resource(show_spinner=False)
def sample_bytes(name: str) -> tuple[str, bytes]:
    """(digest, bytes) of a bundled sample photo."""
    data = SAMPLES[name].read_bytes()
    return digest(data), data


@st.cache_data(max_entries=128, show_spinner=False)
def image_tensor(image_key: str, resolution: int, _data: bytes) -> torch.Tensor:
    """x_0 (1, 3, R, R) in [-1, 1]; raises ImageLoadError with a user-facing message.

    The bytes are decoded once for every resolution and every session (``app.server.uploads``: kept by their
    digest, refusals too, a few decodes at a time).
    """
    return picture_to_x0(uploads.decoded(image_key, _data), resolution)


@st.cache_resource(show_spinner=False)
def schedule(name: str) -> Schedule:
    """A named schedule (linear or cosine), built once per process."""
    return make_schedule(name)


@st.cache_data(max_entries=256, show_spinner=False)
def forward_jump(image_key: str, resolution: int, schedule_name: str, t: int, seed: int, _x0: torch.Tensor):
    """(x_t, eps) from the closed form, with noise from ``torch.Generator().manual_seed(seed)``."""
    g = torch.Generator().manual_seed(seed)
    return forward.q_sample(schedule(schedule_name), _x0, t, generator=g)


@st.cache_data(max_entries=64, show_spinner=False)
def forward_chain(
    image_key: str, resolution: int, schedule_name: str, t: int, seed: int, snapshots: int, _x0: torch.Tensor
):
    """Run the Markov chain t + 1 links with its own generator (seed + 1).

    Returns ``(x_t, [(s, x_s), ...])`` where the list holds ``snapshots`` evenly spaced
    points of the chain, the last one being x_t itself.
    """
    g = torch.Generator().manual_seed(seed + 1)
    marks = {round(k * t / max(snapshots - 1, 1)) for k in range(snapshots)} | {t}
    kept = []
    x = _x0
    for s, x in forward.q_chain(schedule(schedule_name), _x0, t, g):
        if s in marks:
            kept.append((s, x))
    return x, kept


SWEEP_CHUNK_AT_256 = 2  # t values per forward pass of Denoise's sweep at 256 px (more at smaller sizes)


def sweep_chunk_size(resolution: int) -> int:
    """t values per chunk of the sweep: :data:`SWEEP_CHUNK_AT_256` at 256 px, scaled by pixel count (1 to 40)."""
    return int(min(40, max(1, round(SWEEP_CHUNK_AT_256 * (256 / resolution) ** 2))))


class _ChunkStore:
    """The sweep's finished chunks, shared by every session: a bounded LRU map that can be asked without computing
    (``st.cache_data`` cannot say whether it holds a value), so a busy server still shows every chunk already done."""

    def __init__(self, size: int) -> None:
        self.size, self._lock, self._items = size, threading.Lock(), OrderedDict()

    def get(self, key: tuple) -> tuple[list[float], list[float]] | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple, value: tuple[list[float], list[float]]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _chunk_store() -> _ChunkStore:
    return _ChunkStore(4096)


def sweep_chunk_cached(
    image_key: str, resolution: int, model: str, seed: int, ts: tuple[int, ...], label: int | None
) -> tuple[list[float], list[float]] | None:
    """A chunk :func:`sweep_chunk` already computed, or None (nothing is computed)."""
    return _chunk_store().get((image_key, int(resolution), model, int(seed), tuple(ts), label))


def sweep_chunk(
    image_key: str,
    resolution: int,
    model: str,
    seed: int,
    ts: tuple[int, ...],
    label: int | None,
    x0: torch.Tensor,
    net: network.LoadedModel,
) -> tuple[list[float], list[float]]:
    """eps-MSE and x0_hat PSNR at the timesteps ``ts`` in one forward pass, with Denoise's fixed noise for ``seed``
    (kept for every session, keyed on the image's digest, resolution, model, seed, ts and label).

    x_t from eq. 4 with the one eps, eps_hat and the unclipped x0_hat from the network, ``mse`` = mean((eps_hat -
    eps)^2), ``psnr`` = PSNR(x0_hat, x_0) in dB.
    """
    from app.compute.reverse import fixed_noise  # (reverse imports this module)

    key = (image_key, int(resolution), model, int(seed), tuple(ts), label)
    hit = _chunk_store().get(key)
    if hit is not None:
        return hit
    eps = fixed_noise(x0, seed)
    t = torch.tensor(ts, dtype=torch.long)
    n = len(t)
    with admission.sweep_lane(), torch.inference_mode():  # one chunk per inference slot (app/server/admission.py)
        x_t, _ = forward.q_sample(net.schedule, x0.expand(n, -1, -1, -1), t, noise=eps.expand(n, -1, -1, -1))
        eps_hat, x0_hat = net.predict(x_t, t, None if label is None else torch.full((n,), int(label)))
    mse = [float((eps_hat[i : i + 1] - eps).square().mean()) for i in range(n)]
    result = (mse, [figure.psnr(x0_hat[i : i + 1], x0) for i in range(n)])
    _chunk_store().put(key, result)
    return result


COARSE_POINTS = (
    10  # Denoise's sweep first computes this many of its t (one pass), then refines while the server is idle
)


def sweep_plan(T: int) -> tuple[list[int], list[int]]:
    """The sweep's t (``app.compute.reverse.sweep_timesteps``: 40 evenly spaced) split into a coarse first set of
    :data:`COARSE_POINTS`, evenly spread over them (t = 0 and T - 1 included), and the rest, in increasing t."""
    from app.compute.reverse import sweep_timesteps

    ts = sweep_timesteps(T)
    picks = sorted({round(k * (len(ts) - 1) / (COARSE_POINTS - 1)) for k in range(min(COARSE_POINTS, len(ts)))})
    coarse = [ts[i] for i in picks]
    return coarse, [t for t in ts if t not in set(coarse)]


def sweep_steps(
    image_key: str,
    resolution: int,
    model: str,
    seed: int,
    x0: torch.Tensor,
    net: network.LoadedModel,
    label: int | None = None,
    refine: Callable[[], bool] = lambda: True,
) -> Iterator[dict]:
    """Denoise's sweep over t chunk by chunk (each chunk cached): yields ``dict(ts, mse, psnr, done, of)`` after
    every chunk, the t done so far in increasing order.

    The coarse t (:func:`sweep_plan`) come first, in one chunk; the rest follow in smaller chunks (a quarter of
    the coarse size, so a student's slider step waits behind at most one small chunk) for as long as ``refine()``
    says yes before each one, which the page answers with "is the server idle?" (:func:`admission.idle`): on a
    busy server the chart keeps its coarse points and a later rerun, at a quieter moment, fills in the rest from
    where it stopped (every chunk done is cached). The last item has ``done == of`` only when all t are done.
    """
    coarse, fine = sweep_plan(net.schedule.T)
    points: dict[int, tuple[float, float]] = {}
    size = sweep_chunk_size(resolution)
    fine_size = max(1, size // 4)
    chunks = [tuple(coarse[a : a + size]) for a in range(0, len(coarse), size)]
    chunks += [tuple(fine[a : a + fine_size]) for a in range(0, len(fine), fine_size)]
    of = len(coarse) + len(fine)
    for chunk in chunks:
        cached = sweep_chunk_cached(image_key, resolution, model, seed, chunk, label)
        if cached is None and len(points) >= len(coarse) and not refine():
            break  # busy: keep the coarse chart; a later rerun goes on from here
        m, p = cached or sweep_chunk(image_key, resolution, model, seed, chunk, label, x0, net)
        points.update({t: (mse, ps) for t, mse, ps in zip(chunk, m, p, strict=True)})
        ts = sorted(points)
        yield dict(ts=ts, mse=[points[t][0] for t in ts], psnr=[points[t][1] for t in ts], done=len(ts), of=of)


__all__ = ["ImageLoadError", "forward_chain", "forward_jump", "image_tensor", "sweep_steps"]
