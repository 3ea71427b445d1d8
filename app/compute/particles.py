"""The particle lab's and the sampler race's door to ``model/particles``: the fair queue for live training, the
trained networks every session shares, and the cached race results.

Policy lives here, at the app's edge: at most ``$DIFFUSION_LENS_TRAIN_SLOTS`` trainings run at once (``$DIFFUSION_LENS_TRAIN_SLOTS``,
default 1: the machine's cores are for the forward passes of the image pages), in strict arrival order, so 60
students who press *Train* together are served one after another and each sees how many are ahead.
A finished training is kept (keyed on the points and the exact settings; the same seed gives the same network), so
a second student with the same settings gets it at once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from app.server import admission, guard
from model.diffusion.schedule import Schedule, make_schedule
from model.particles import data, lab, mlp, race
from model.particles import metrics as metrics
from model.particles import paths as paths

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


def queued(poll_s: float = 0.5, owner: str | None = None) -> Iterator[int]:
    """Queue for a training slot: yields the number of trainings ahead (to show) every ``poll_s`` while waiting, and
    returns the admitted ticket. The caller must call
    ``admission.training_queue().done(ticket)`` after training (use :func:`train_live`).
    :class:`BrowserBusy` (a ValueError with one sentence) when ``owner`` already has a training queued or running."""
    queue = admission.training_queue()
    ticket = queue.join(owner)
    try:
        while not queue.wait(ticket, poll_s):
            yield queue.ahead(ticket) + queue.slots
    except BaseException:
        queue.leave(ticket)
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
        admission.training_queue().done(ticket)


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
