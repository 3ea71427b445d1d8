"""Every time estimate the app shows before a run, from one place.

An estimate is the plan of the work (how many network passes, at which batch and t) times a
*measured* forward pass of the model in use, at the resolution and batch the work will use,
plus the measured cost of the loop around the network (see :mod:`model.serving.cost` for the
measuring). Each measurement is made once per process and kept here, keyed by the model
(its source, device and network object), the resolution, the batch and the arithmetic path:
the app's memo, shared by every session, so the first visitor pays a pass or two and
everyone after reads a number. Nothing is stored on the shared :class:`LoadedModel`.

Used by the sidebar's seconds per step (:mod:`app.model_picker`), the Reverse trajectory's
run and t_start-sweep buttons, and the Training objective's "Compute all T terms" button.
``bench/estimates.py`` prints these estimates beside measured times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from model.diffusion.trajectory import make_timesteps
from model.diffusion.vlb_terms import default_batch_size
from model.nets.network import LoadedModel
from model.serving import cost

SIDEBAR_STEPS = 50  # the sidebar quotes a DDIM run of this many steps from pure noise

_memo: dict[tuple, float] = {}
_lock = threading.Lock()  # one measurement at a time: two sessions never time the same thing twice
_generation = 0


def _model_key(model: LoadedModel) -> tuple:
    return (model.source, str(model.device), id(model.unet))


def _memoised(key: tuple, measure: Callable[[], float]) -> float:
    known = _memo.get(key)  # a read needs no lock: sessions never wait behind another model's measurement
    if known is not None:
        return known
    with _lock:
        if key not in _memo:
            _memo[key] = float(measure())
        return _memo[key]


def macs(model: LoadedModel, resolution: int) -> int:
    """MACs of one forward pass at ``resolution`` px (:func:`model.serving.cost.count_macs`), counted once per process:
    counting walks the network on the meta device, which every sidebar rerun paid before."""
    return int(
        _memoised((*_model_key(model), "macs", int(resolution)), lambda: cost.count_macs(model.unet, resolution))
    )


def clear() -> None:
    """Forget every measurement (tests; a server keeps them for its lifetime)."""
    global _generation
    with _lock:
        _memo.clear()
        _generation += 1


def generation() -> int:
    """How many times :func:`clear` ran: what is made from these numbers and kept (the sidebar's captions) keys
    on it, so that it is made again after a clear."""
    return _generation


def forward_seconds(model: LoadedModel, resolution: int, batch: int, t: int) -> float:
    """Seconds of one forward pass of ``model`` at ``resolution`` px, batch ``batch``, on the path it runs at t."""
    key = (*_model_key(model), "forward", int(resolution), int(batch), cost.path_name(model, t))
    return _memoised(key, lambda: cost.time_forward(model, int(resolution), int(batch), int(t)))


def trajectory(
    model: LoadedModel,
    resolution: int,
    timesteps: Sequence[int],
    sampler: str = "ddim",
    guidance: bool = False,
    record: bool = True,
) -> cost.Estimate:
    """A reverse run over ``timesteps`` (one pass per step; batch 2 with classifier-free guidance).

    ``record``: the run keeps x_t, eps_hat, x0_hat and PSNR at every step (the Reverse trajectory's
    run); False for the t_start sweep, which keeps only each start's final image. Several runs
    (the sweep's starts) are one plan: pass their timesteps one after the other.
    """
    res, sampler = int(resolution), sampler.lower()
    over = _memoised(
        (*_model_key(model), "trajectory", res, sampler, bool(record)),
        lambda: cost.trajectory_overhead(model.schedule, model.channels, res, sampler, record),
    )
    passes = cost.trajectory_passes(timesteps, 2 if guidance else 1)
    return cost.estimate(model, passes, over * len(timesteps), lambda b, t: forward_seconds(model, res, b, t))


def sidebar_step(model: LoadedModel, resolution: int) -> cost.Estimate:
    """The sidebar's quote: a :data:`SIDEBAR_STEPS`-step DDIM run from pure noise (``per_pass()`` = s per step)."""
    ts = make_timesteps(model.schedule.T - 1, SIDEBAR_STEPS)
    return trajectory(model, resolution, ts, "ddim")


def all_terms(model: LoadedModel, resolution: int, timesteps: Sequence[int] | None = None) -> cost.Estimate:
    """Every one of the T terms of the bound (:func:`model.diffusion.likelihood.vb_terms` with its default batch size),
    or only those at ``timesteps`` (in that order)."""
    res = int(resolution)
    batch = default_batch_size(res)
    passes = cost.terms_passes(model.schedule.T, batch, timesteps)
    per_batch = _memoised(
        (*_model_key(model), "terms", res, batch),
        lambda: cost.terms_overhead(model.schedule, model.channels, res, batch),
    )
    n_batches = sum(passes.values())
    return cost.estimate(model, passes, per_batch * n_batches, lambda b, t: forward_seconds(model, res, b, t))
