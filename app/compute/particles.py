"""The particle lab's and the sampler race's door to ``model/particles``: the fair queue for live training, the
trained networks every session shares, and the cached race results.

Policy lives here, at the app's edge: at most :data:`TRAIN_SLOTS` trainings run at once (``$DIFFUSION_LENS_TRAIN_SLOTS``,
default 1: the machine's cores are for the forward passes of the image pages), in strict arrival order, so 60
students who press *Train* together are served one after another and each sees how many are ahead.
A finished training is kept (keyed on the points and the exact settings; the same seed gives the same network), so
a second student with the same settings gets it at once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from app import settings
from app.server import guard
from model.diffusion.schedule import Schedule, make_schedule
from model.particles import data, lab, mlp, race
from model.particles import metrics as metrics
from model.particles import paths as paths

TRAIN_SLOTS = settings.current().train_slots  # $DIFFUSION_LENS_TRAIN_SLOTS (app/settings.py)
MAX_TRAIN_STEPS = 2000  # the most optimiser steps one training may take (a few seconds on one core)
KEEP_TRAINED = 64  # finished trainings kept for every session (each is ~70 kB of weights)


def points_key(points: torch.Tensor) -> str:
    """The cache key of a point set: sha256 of its float32 bytes."""
    return hashlib.sha256(points.float().numpy().tobytes()).hexdigest()[:16]


@st.cache_resource(show_spinner=False)
def schedule() -> Schedule:
    """The particle lab's noise schedule: the project's linear DDPM schedule (Ho et al.), T = 1000."""
    return make_schedule("linear")


@st.cache_data(max_entries=64, show_spinner=False)
def dataset(name: str, n: int, seed: int) -> torch.Tensor:
    return data.make_dataset(name, n, seed)


@st.cache_data(max_entries=256, show_spinner=False, hash_funcs={torch.Tensor: points_key})
def exact_field(points: torch.Tensor, t: int, flow_matching: bool) -> lab.ExactField:
    """Section 1's exact field (:func:`model.particles.lab.exact_field`), cached for every session."""
    return lab.exact_field(schedule(), points, int(t), flow_matching)


@st.cache_data(max_entries=256, show_spinner=False, hash_funcs={torch.Tensor: points_key})
def exact_paths(points: torch.Tensor, steps: int, seed: int, flow_matching: bool) -> dict[str, torch.Tensor]:
    """Section 2's paths (:func:`model.particles.lab.exact_paths`), cached for every session."""
    return lab.exact_paths(schedule(), points, int(steps), int(seed), flow_matching)


# --- the training queue ---------------------------------------------------------------------------------------------


PER_BROWSER = 1  # trainings one browser may have queued or running at once, however many tabs it opens
BUSY = (
    "A training from this browser (another tab?) is already queued or running: press Train again once it has finished."
)


class BrowserBusy(ValueError):
    """A browser asked for more than :data:`PER_BROWSER` trainings at once."""


class TrainingQueue:
    """FIFO admission to :attr:`slots` concurrent trainings that keeps a waiter's place while it polls (so a page can
    redraw "3 ahead of you" between polls without losing its turn), with at most :attr:`per_owner` places (queued or
    running) per owner: a browser, so twelve tabs of one student hold one place, not twelve
    (:func:`app.server.guard.browser_id`)."""

    def __init__(self, slots: int, per_owner: int = PER_BROWSER) -> None:
        self.slots = slots
        self.per_owner = per_owner
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._owners: dict[object, str] = {}  # ticket -> its owner, while queued or running
        self._running = 0

    def join(self, owner: str | None = None) -> object:
        """A place at the back of the queue; :class:`BrowserBusy` if ``owner`` already holds :attr:`per_owner`."""
        with self._cond:
            if owner is not None and list(self._owners.values()).count(owner) >= self.per_owner:
                raise BrowserBusy(BUSY)
            ticket = object()
            self._queue.append(ticket)
            if owner is not None:
                self._owners[ticket] = owner
            return ticket

    def ahead(self, ticket: object) -> int:
        """How many are queued before ``ticket`` (0: next in line)."""
        with self._cond:
            return self._queue.index(ticket) if ticket in self._queue else 0

    def wait(self, ticket: object, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a slot; True once admitted (the ticket then holds a slot until :meth:`done`)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._queue[0] is ticket and self._running < self.slots, timeout)
            if ok:
                self._queue.popleft()
                self._running += 1
                self._cond.notify_all()
            return ok

    def leave(self, ticket: object) -> None:
        """Give up a place that was never admitted (the session went away)."""
        with self._cond:
            if ticket in self._queue:
                self._queue.remove(ticket)
            self._owners.pop(ticket, None)
            self._cond.notify_all()

    def done(self, ticket: object | None = None) -> None:
        """A training admitted with ``ticket`` has finished: its slot and its owner's place are free."""
        with self._cond:
            self._running -= 1
            self._owners.pop(ticket, None)
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)


QUEUE = TrainingQueue(TRAIN_SLOTS)


def queued(poll_s: float = 0.5, owner: str | None = None) -> Iterator[int]:
    """Queue for a training slot: yields the number of trainings ahead (to show) every ``poll_s`` while waiting, and
    returns the admitted ticket. The caller must call ``QUEUE.done(ticket)`` after training (use :func:`train_live`).
    :class:`BrowserBusy` (a ValueError with one sentence) when ``owner`` already has a training queued or running."""
    ticket = QUEUE.join(owner)
    try:
        while not QUEUE.wait(ticket, poll_s):
            yield QUEUE.ahead(ticket) + QUEUE.slots
    except BaseException:
        QUEUE.leave(ticket)
        raise
    return ticket


def _this_browser() -> str | None:
    """The browser of the script run calling (None outside one: a benchmark or a test calling directly)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return guard.browser_id() if get_script_run_ctx() is not None else None


# --- trained networks, shared -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """A finished training: the network (read-only from here on), its loss per step, and how long it took."""

    net: mlp.ParticleMLP
    losses: tuple[float, ...]
    seconds: float


_trained: OrderedDict[tuple, Trained] = OrderedDict()
_trained_lock = threading.Lock()


def trained(key: tuple) -> Trained | None:
    with _trained_lock:
        if key in _trained:
            _trained.move_to_end(key)
            return _trained[key]
        return None


def _keep(key: tuple, result: Trained) -> None:
    with _trained_lock:
        _trained[key] = result
        while len(_trained) > KEEP_TRAINED:
            _trained.popitem(last=False)


def train_live(points: torch.Tensor, config: mlp.TrainConfig) -> Iterator[mlp.TrainProgress | int]:
    """Queue, then train, yielding ints (trainings ahead) while queued and :class:`~model.particles.mlp.TrainProgress`
    while training; the finished network is kept for :func:`trained`. Runs on the page's own thread with the thread
    count the app chose; the MLP is below torch's parallel grain, so it uses one core."""
    if config.steps > MAX_TRAIN_STEPS:
        raise ValueError(f"at most {MAX_TRAIN_STEPS} steps per training")
    key = (points_key(points), config)
    ticket = yield from queued(owner=_this_browser())  # one training per browser at a time, whatever its tabs
    try:
        last = None
        for last in mlp.train(points, schedule(), config):
            yield last
        if last is not None:
            _keep(key, Trained(last.net.eval(), tuple(last.losses), last.seconds))
    finally:
        QUEUE.done(ticket)


# --- the race ---------------------------------------------------------------------------------------------------------


def race_rows(runs: list[race.RaceRun], quality: dict[tuple[str, int], float]) -> list[dict]:
    """Table rows (scheduler, steps, evaluations, quality, straightness) of finished runs."""
    return [
        {
            "scheduler": r.name,
            "steps": r.num_steps,
            "evaluations": r.evaluations,
            "quality": quality[(r.name, r.num_steps)],
            "straightness": r.straightness,
        }
        for r in runs
    ]


def fashion_eps(model, label: int | None):
    """The loaded Fashion generator as ``eps_fn(x_t, t)`` for :func:`model.particles.race.eps_network_model`:
    diffusers' float timesteps are rounded to the integer steps the network was trained on."""

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = torch.as_tensor(t, dtype=torch.float64).round().clamp(0, model.schedule.T - 1).long()
        return model.eps(x_t.float(), tt, class_labels=label)

    return eps_fn


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 1, H, W) in about [-1, 1] -> (B, H, W) uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()


def now() -> float:
    return time.perf_counter()
