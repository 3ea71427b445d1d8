"""The shared computations: the sample photos, image tensors, the forward process and Denoise's sweep over t.

* ``st.cache_resource`` holds the read-only model and schedules (shared by all sessions).
* ``st.cache_data`` holds results, keyed on cheap exact keys: the sha256 of the image
  bytes (``image_key``), the resolution, t, seed, schedule/model name. Arguments whose
  name starts with ``_`` (the tensors themselves) are not hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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


@st.cache_data(max_entries=1024, show_spinner=False)
def sweep_chunk(
    image_key: str,
    resolution: int,
    model: str,
    seed: int,
    ts: tuple[int, ...],
    label: int | None,
    _x0: torch.Tensor,
    _model: network.LoadedModel,
) -> tuple[list[float], list[float]]:
    """eps-MSE and x0_hat PSNR at the timesteps ``ts`` in one forward pass, with Denoise's fixed noise for ``seed``.

    The same numbers as ``app.compute.reverse.sweep`` at those t: x_t from eq. 4 with the one eps, eps_hat and the
    unclipped x0_hat from the network, ``mse`` = mean((eps_hat - eps)^2), ``psnr`` = PSNR(x0_hat, x_0) in dB.
    """
    from app.compute.reverse import fixed_noise  # (backend_reverse imports this module)

    eps = fixed_noise(_x0, seed)
    t = torch.tensor(ts, dtype=torch.long)
    n = len(t)
    with admission.sweep_lane(), torch.inference_mode():  # one chunk per inference slot (app/server/admission.py)
        x_t, _ = forward.q_sample(_model.schedule, _x0.expand(n, -1, -1, -1), t, noise=eps.expand(n, -1, -1, -1))
        eps_hat, x0_hat = _model.predict(x_t, t, None if label is None else torch.full((n,), int(label)))
    mse = [float((eps_hat[i : i + 1] - eps).square().mean()) for i in range(n)]
    return mse, [figure.psnr(x0_hat[i : i + 1], _x0) for i in range(n)]


def sweep_steps(
    image_key: str,
    resolution: int,
    model: str,
    seed: int,
    x0: torch.Tensor,
    net: network.LoadedModel,
    label: int | None = None,
) -> Iterator[dict]:
    """Denoise's sweep over t chunk by chunk (each chunk cached): yields ``dict(ts, mse, psnr, done, of)`` after
    every chunk, the t done so far in increasing order; the last item is the whole sweep."""
    from app.compute.reverse import sweep_timesteps

    ts = sweep_timesteps(net.schedule.T)
    mse: list[float] = []
    psnr: list[float] = []
    size = sweep_chunk_size(resolution)
    for a in range(0, len(ts), size):
        m, p = sweep_chunk(image_key, resolution, model, seed, tuple(ts[a : a + size]), label, x0, net)
        mse, psnr = mse + m, psnr + p
        yield dict(ts=ts[: len(mse)], mse=mse, psnr=psnr, done=len(mse), of=len(ts))


__all__ = ["ImageLoadError", "forward_chain", "forward_jump", "image_tensor", "sweep_steps"]
