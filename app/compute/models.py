"""The app's models: one process-wide, bounded, thread-safe cache of loaded networks, shared by every session.

The math and the commands load a model with :func:`model.nets.network.load_model` (a new instance each call); the
app asks :func:`get_model`, so thirty sessions share one read-only copy. A folder re-saved on disk is loaded again
(:func:`model.nets.network.fingerprint`), and a model loaded under another arithmetic policy is another entry
(:func:`model.nets.network.cache_key`). Every model it loads is prepared by the server's one
:class:`model.serving.service.Serving` object (``app/settings.py``): its queue, batcher and arithmetic.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import streamlit as st
import torch

from app import settings
from model.nets import network
from model.nets.checkpoint_io import ModelLoadError as ModelLoadError
from model.nets.hub import Progress, parse_source
from model.nets.network import LoadedModel, select_device

MAX_CACHED_MODELS = 3


def load_served(kind: str, where: str, progress: Progress | None, device) -> LoadedModel:
    """A model loaded (:func:`model.nets.network.load_parsed`) and prepared by the server's Serving object."""
    return settings.serving().prepare(network.load_parsed(kind, where, progress, device))


def _key(kind: str, where: str, device) -> tuple:
    """The cache key: the source, the device (``DIFFUSION_LENS_DEVICE`` unless given) and the server's policy."""
    dev = select_device(device or settings.current().serving.device)
    return network.cache_key(kind, where, dev, settings.serving().policy)


class ModelCache:
    """At most ``maxsize`` loaded models, least recently used evicted first.

    Thread safety: one lock guards the table, and one lock per key makes concurrent
    requests for the same model wait for a single load instead of loading it twice
    (different models still load in parallel). Failed loads are not cached.
    """

    def __init__(self, maxsize: int = MAX_CACHED_MODELS, loader=load_served):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._loader = loader
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple, tuple[tuple, LoadedModel]] = OrderedDict()
        self._loading: dict[tuple, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._models)

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def peek(self, source, device=None) -> LoadedModel | None:
        """The cached model for ``source`` if it is loaded and up to date, else None; never loads."""
        kind, where = parse_source(source)
        key, fp = _key(kind, where, device), network.fingerprint(kind, where)
        with self._lock:
            hit = self._models.get(key)
        return hit[1] if hit and hit[0] == fp else None

    def _hit(self, key: tuple, fp: tuple) -> LoadedModel | None:
        with self._lock:
            hit = self._models.get(key)
            if hit is None or hit[0] != fp:
                return None
            self._models.move_to_end(key)
            return hit[1]

    def get(self, source, progress: Progress | None = None, device=None) -> LoadedModel:
        kind, where = parse_source(source)
        dev = select_device(device or settings.current().serving.device)
        key, fp = _key(kind, where, dev), network.fingerprint(kind, where)
        model = self._hit(key, fp)
        if model is not None:
            return model
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            model = self._hit(key, fp)  # loaded by another thread while we waited
            if model is not None:
                return model
            try:
                model = self._loader(kind, where, progress, dev)
                with self._lock:
                    self._models[key] = (fp, model)
                    self._models.move_to_end(key)
                    while len(self._models) > self.maxsize:
                        self._models.popitem(last=False)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return model


_CACHE = ModelCache(MAX_CACHED_MODELS)


def get_model(
    source: str | Path | None = None, progress: Progress | None = None, device: str | torch.device | None = None
) -> LoadedModel:
    """:func:`model.nets.network.load_model` through a process-wide LRU cache of at most ``MAX_CACHED_MODELS`` = 3 models.

    Why 3: the cache is per process, shared by every browser session, so sessions do not
    multiply it. A 256-px Google DDPM has 113.7M parameters = 455 MB in float32 (the
    32-px CIFAR-10 one 35.7M = 143 MB). Three is the bundled model plus two others to
    compare (say CIFAR-10 and one 256-px model), at most ~1.4 GB of weights. On a 24 GB
    server that leaves ~22 GB for activations: one 256-px forward at batch 1 peaks at a few
    hundred MB, so ~30 sessions stepping at once still fit. A fourth model evicts the
    least recently used one; reloading it costs seconds (from the local Hub cache), never a
    re-download.
    """
    return _CACHE.get(source, progress, device)


def peek(source: str | Path | None, device: str | torch.device | None = None) -> LoadedModel | None:
    """The model for ``source`` if this process has it loaded and up to date, else None; never loads or downloads."""
    return _CACHE.peek(source, device)


def get_bundled(name: str) -> LoadedModel:
    """A bundled model by name ("bundled" or "fashion"), through the same process-wide cache."""
    return get_model(name)


@st.cache_resource(show_spinner=False)
def _warm_up_thread(sources: tuple[str, ...]) -> threading.Thread:
    def load() -> None:
        for source in sources:
            try:
                get_model(source)
            except Exception:  # noqa: BLE001 -- the page that needs the model reports the error
                pass

    thread = threading.Thread(target=load, name="diffusion-lens-warm-up", daemon=True)
    thread.start()
    return thread


def warm_up() -> threading.Thread | None:
    """Once per process (the app's entry file calls it): the time estimates start following the server's speed
    (app/compute/estimates.py), and the default model and the Fashion generator load in a background thread.

    The first visitor then finds them loaded (their fidelity guard included) instead of waiting for them;
    a session that asks while one is loading waits for that one load (the cache's per-model lock). ``python -m
    app.launch`` makes that first visitor a warm-up visit of its own (app/server/warm_start.py), before any student.
    Errors are left to the page that needs the model, which shows them. Returns the thread (the same one for the
    life of the process, kept by ``st.cache_resource``), or None when ``DIFFUSION_LENS_WARM_UP=0``.
    """
    from app.compute import estimates

    estimates.follow_speed()
    if not settings.current().warm_up:
        return None
    return _warm_up_thread(tuple(dict.fromkeys((settings.current().model, "fashion"))))
