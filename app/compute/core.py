"""The app's only door to ``model/``: cached, read-only access for the pages.

* ``st.cache_resource`` holds the read-only model and schedules (shared by all sessions).
* ``st.cache_data`` holds results, keyed on cheap exact keys: the sha256 of the image
  bytes (``image_key``), the resolution, t, seed, schedule/model name. Arguments whose
  name starts with ``_`` (the tensors themselves) are not hashed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from app import settings
from app.compute import models
from app.server import admission, uploads
from model.diffusion import forward
from model.diffusion.schedule import Schedule, make_schedule
from model.images import figure
from model.images.decode import ImageLoadError
from model.images.tensors import picture_to_x0, to_channels
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


@dataclass(frozen=True)
class CurrentImage:
    key: str  # sha256 of the bytes (+ ":grey" when converted for a grey model)
    name: str  # shown to the user
    resolution: int
    x0: torch.Tensor  # (1, C, R, R) in [-1, 1]; C = 3, or 1 for a grey model

    @property
    def grey(self) -> bool:
        return self.x0.shape[1] == 1


def current_image(channels: int = 3) -> CurrentImage | None:
    """The image chosen in the sidebar at the chosen resolution, or None if there is none yet.

    ``channels=1`` (a grey model) converts it to grey (BT.601 luma); its cache key then ends in ":grey".
    Raises :class:`ImageLoadError` (a message for the user) for a bad upload.
    """
    ss = st.session_state
    res = int(ss["resolution"])
    if ss["image_source"] == "Upload":
        if not ss.get("upload_bytes"):
            return None
        key, data, name = ss["upload_digest"], ss["upload_bytes"], ss["upload_name"] or "your upload"
    else:
        if ss["sample_name"] not in SAMPLES:  # e.g. a stale name from an old link
            ss["sample_name"] = "astronaut"
        key, data = sample_bytes(ss["sample_name"])
        name = ss["sample_name"]
    x0 = image_tensor(key, res, data)
    if channels != x0.shape[1]:
        x0, key = to_channels(x0, channels), f"{key}:grey" if channels == 1 else key
    return CurrentImage(key=key, name=name, resolution=res, x0=x0)


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


def model_source() -> str | None:
    """The model chosen in the sidebar: None for the bundled model, else a folder or Hub id.

    The environment variable ``DIFFUSION_LENS_MODEL`` (a folder or Hub id) replaces the bundled
    model as the default, e.g. for a teacher's server or the browser tests.
    """
    src = st.session_state.get("model_source", "bundled")
    if src in (None, "", "bundled"):
        return settings.current().model
    return src


_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def warm_up() -> threading.Thread | None:
    """Once per process (the app's entry file calls it): the time estimates start following the server's speed
    (app/compute/estimates.py), and the default model and the Fashion generator load in a background thread.

    The first visitor then finds them loaded (their fidelity guard included) instead of waiting for them;
    a session that asks while one is loading waits for that one load (the cache's per-model lock). ``python -m
    app.launch`` makes that first visitor a warm-up visit of its own (app/server/warm_start.py), before any student.
    Errors are left to the page that needs the model, which shows them. Returns the thread, or None.
    """
    global _warm_thread
    from app.compute import estimates

    estimates.follow_speed()
    if not settings.current().warm_up:  # DIFFUSION_LENS_WARM_UP=0
        return None
    with _warm_lock:
        if _warm_thread is not None:
            return _warm_thread

        def load() -> None:
            for source in dict.fromkeys((settings.current().model, "fashion")):
                try:
                    models.get_model(source)
                except Exception:  # noqa: BLE001 -- the page that needs the model reports the error
                    pass

        _warm_thread = threading.Thread(target=load, name="diffusion-lens-warm-up", daemon=True)
        _warm_thread.start()
        return _warm_thread


def model_key() -> str:
    """The model part of a cache key: "bundled" or the folder / Hub id (every page uses this one)."""
    return model_source() or "bundled"


def get_bundled(name: str) -> network.LoadedModel:
    """A bundled model by name ("bundled" or "fashion"), through the same process-wide cache."""
    return models.get_model(name)


def current_model() -> network.LoadedModel:
    """The chosen eps-model (loaded once per process, shared read-only), checked against the classroom lock; one
    that cannot load falls back to the bundled model (app/session/which_model.py). Raises ModelLoadError."""
    from app.session import which_model  # (model_choice reads model_source from this module)

    return which_model.current()


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


__all__ = ["ImageLoadError", "CurrentImage", "current_image", "current_model", "forward_jump", "forward_chain"]
