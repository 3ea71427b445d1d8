"""Every time estimate the app shows before a run, from one place.

An estimate is the plan of the work (how many network passes, at which batch and t) times a
*measured* forward pass of the model in use, at the resolution and batch the work will use,
plus the measured cost of the loop around the network (see :mod:`model.serving.cost` for the
measuring). Each measurement is made once per process and kept here, keyed by the model
(its source, device and network object), the resolution, the batch and the arithmetic path:
the app's memo, shared by every session, so the first visitor pays a pass or two and
everyone after reads a number. Nothing is stored on the shared :class:`LoadedModel`.

A measurement made once would go stale: a server busy with a class runs the same pass two or three times slower
than when it was measured, and a quiet one faster than when it was measured during a rush. So every estimate is
made for the server's **current speed**: after :func:`follow_speed`, every forward pass the server runs (any
session's, its queueing included) is compared with the memoised measurement of the same pass; over the newest burst
of those samples, each planned pass gets the mean extra time (:func:`delay`, mostly the queue's wait) and the loop's
own work the mean slow-down (:func:`speed`). When no pass ran in the last :data:`STALE_S` seconds, a few
probe passes measure it (:func:`refresh_speed`): a class that has gone leaves no stale slowness behind.

Used by the sidebar's seconds per step (:mod:`app.model_picker`), the Reverse trajectory's
run and t_start-sweep buttons, and the Training objective's "Compute all T terms" button.
``bench/estimates.py`` prints these estimates beside measured times.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import torch

from model.diffusion.trajectory import make_timesteps
from model.diffusion.vlb_terms import default_batch_size
from model.nets import network
from model.nets.network import LoadedModel
from model.serving import cost

SIDEBAR_STEPS = 50  # the sidebar quotes a DDIM run of this many steps from pure noise

_memo: dict[tuple, float] = {}
_lock = threading.Lock()  # one measurement at a time: two sessions never time the same thing twice
_generation = 0

WINDOW_S = 60.0  # samples older than a minute are forgotten
RECENT_S = 10.0  # the speed: the median of the newest burst of samples, at most this long
STALE_S = 2.0  # no pass for this long: a burst has ended (the server is quiet now, and a probe measures it)
PROBE_PASSES = 3  # a probe: this many batch-1 passes
PROBE_SYNC_S = 1.0  # a probe this short runs at once, so the estimate it was made for already uses it
PROBE_SHARE = 0.05  # a probe at most every STALE_S, and at most this share of the time (large models)
SPEED_LIMITS = (0.2, 20.0)  # a factor outside these is a hiccup, not a speed
SPEED_STEP = 1.15  # the captions made from estimates are made again when the speed moves by this factor
_seen: deque[tuple[float, float, float]] = deque(maxlen=256)  # (time.monotonic(), observed s, memoised s) per pass
_probing = threading.Lock()
_last_probe = [-math.inf]


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
    """Forget every measurement and every observed pass (tests; a server keeps them for its lifetime)."""
    global _generation
    with _lock:
        _memo.clear()
        _seen.clear()
        _last_probe[0] = -math.inf
        _generation += 1


def generation() -> int:
    """How many times :func:`clear` ran: what is made from these numbers and kept (the sidebar's captions) keys
    on it, so that it is made again after a clear."""
    return _generation


def _forward_key(model: LoadedModel, resolution: int, batch: int, path: str) -> tuple:
    return (*_model_key(model), "forward", int(resolution), int(batch), path)


def observe_pass(model: LoadedModel, batch: int, resolution: int, t: torch.Tensor, seconds: float) -> None:
    """A forward pass of ``model`` just took ``seconds`` (wall clock, queueing included): one sample of the server's
    speed against the memoised measurement of the same pass (a pass never measured is no sample)."""
    try:
        base = _memo.get(_forward_key(model, resolution, batch, cost.path_name(model, int(t.max()))))
    except Exception:  # noqa: BLE001 -- an observer never breaks a forward pass
        return
    if base:
        _seen.append((time.monotonic(), float(seconds), base))


def follow_speed() -> None:
    """From now on every forward pass in this process is a sample of the current speed (the app's entry file and
    bench/estimates.py call this once)."""
    if observe_pass not in network.PASS_OBSERVERS:
        network.PASS_OBSERVERS.append(observe_pass)


def _recent(now: float) -> list[tuple[float, float]]:
    """(observed s, memoised s) of the newest burst of samples: back from the newest one, while no gap exceeds
    :data:`STALE_S` and for at most :data:`RECENT_S` (none if the newest is older than :data:`WINDOW_S`). A quiet
    spell ends a burst, so what a class did before it left is not the speed of the quiet server after it (whose
    probe starts a new burst)."""
    samples = list(_seen)
    if not samples or now - samples[-1][0] > WINDOW_S:
        return []
    newest = last = samples[-1][0]
    out = []
    for when, observed, base in reversed(samples):
        if last - when > STALE_S or newest - when > RECENT_S:
            break
        out.append((observed, base))
        last = when
    return out


def _clip(ratio: float) -> float:
    return min(max(ratio, SPEED_LIMITS[0]), SPEED_LIMITS[1])


def speed() -> float:
    """How many times longer a pass takes now than when it was measured: the mean ratio over the newest burst of
    samples, each within :data:`SPEED_LIMITS` (1.0 when there are none). The mean, not the median: a run's time is
    the sum of its passes, long waits in the queue included."""
    ratios = [_clip(observed / base) for observed, base in _recent(time.monotonic())]
    return statistics.fmean(ratios) if ratios else 1.0


def delay() -> float:
    """Seconds a pass takes now beyond its measurement, on average over the newest burst (negative on a server
    quieter than when it measured). Mostly the wait in the inference queue behind other sessions' passes, which a
    pass pays whatever its size: a batch of 100 terms waits as long as one step does, not 100 times longer."""
    extra = [base * (_clip(observed / base) - 1) for observed, base in _recent(time.monotonic())]
    return statistics.fmean(extra) if extra else 0.0


def speed_step() -> int:
    """The current speed in steps of :data:`SPEED_STEP` (what the sidebar's kept captions key on)."""
    return round(math.log(speed()) / math.log(SPEED_STEP))


def refresh_speed(model: LoadedModel, resolution: int) -> None:
    """When no pass ran in the last :data:`STALE_S` seconds (a quiet server, or one busy with other work than this
    app's): :data:`PROBE_PASSES` batch-1 passes of ``model`` at ``resolution`` px measure the speed, in a background
    thread when the probe would take over :data:`PROBE_SYNC_S`, and at most :data:`PROBE_SHARE` of the time. Only while
    following (:func:`follow_speed`): else the probe's passes would not be seen."""
    if observe_pass not in network.PASS_OBSERVERS:
        return
    t = model.schedule.T - 1
    base = _memo.get(_forward_key(model, resolution, 1, cost.path_name(model, t)))
    if not base:  # no pass of this model and size measured yet: nothing to compare a probe with
        return
    now = time.monotonic()
    newest = _seen[-1][0] if _seen else -math.inf
    every = max(STALE_S, PROBE_PASSES * base / PROBE_SHARE)
    if now - newest < STALE_S or now - _last_probe[0] < every or not _probing.acquire(blocking=False):
        return
    _last_probe[0] = now

    def probe() -> None:
        try:
            x = torch.zeros(1, model.channels, int(resolution), int(resolution))
            for _ in range(PROBE_PASSES):
                model.eps(x, t)
        except Exception:  # noqa: BLE001 -- a probe is advice; the estimate keeps its last speed
            pass
        finally:
            _probing.release()

    if PROBE_PASSES * base <= PROBE_SYNC_S:
        probe()
    else:
        threading.Thread(target=probe, name="diffusion-lens-speed-probe", daemon=True).start()


def _at_current_speed(est: cost.Estimate) -> cost.Estimate:
    """``est`` on the server as it is now: every pass waits :func:`delay` longer (not less than a fifth of its
    measured time), and the loop's own work, which shares the cores, runs :func:`speed` times slower."""
    forward = max(est.forward_s + est.passes * delay(), est.forward_s * SPEED_LIMITS[0])
    return cost.Estimate(passes=est.passes, forward_s=forward, overhead_s=est.overhead_s * speed())


def forward_seconds(model: LoadedModel, resolution: int, batch: int, t: int) -> float:
    """Seconds of one forward pass of ``model`` at ``resolution`` px, batch ``batch``, on the path it runs at t."""
    key = _forward_key(model, resolution, batch, cost.path_name(model, t))
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
    est = cost.estimate(model, passes, over * len(timesteps), lambda b, t: forward_seconds(model, res, b, t))
    refresh_speed(model, res)
    return _at_current_speed(est)


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
    est = cost.estimate(model, passes, per_batch * n_batches, lambda b, t: forward_seconds(model, res, b, t))
    refresh_speed(model, res)
    return _at_current_speed(est)
