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
of those samples, a planned pass takes its measurement times the mean ratio of its own samples, or, when it has
too few, its measurement plus the mean extra time of them all (:func:`delay`, mostly the queue's wait); the loop's
own work takes the mean slow-down (:func:`speed`). When the pass an estimate needs most has too few samples, a few
probe passes of it measure it (:func:`refresh_speed`): a quiet server, or a class that has gone, leaves no stale
slowness behind.

Used by the sidebar's seconds per step (:mod:`app.ui.model_picker`), the Reverse trajectory's
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
_clears = [0]  # how many times clear() ran, in a list: changed in place, never rebound

RECENT_S = 10.0  # the speed: the median of the newest burst of samples, at most this long
STALE_S = 2.0  # no pass for this long: a burst has ended (the server is quiet now, and a probe measures it)
PROBE_PASSES = 3  # a probe: this many batch-1 passes
PROBE_SYNC_S = 0.5  # a probe this short runs at once, so the estimate it was made for already uses it
PROBE_SHARE = 0.05  # a probe at most every STALE_S, and at most this share of the time (large models)
SPEED_LIMITS = (0.2, 20.0)  # a factor outside these is a hiccup, not a speed
SPEED_STEP = 1.15  # the captions made from estimates are made again when the speed moves by this factor
_seen: deque[tuple[float, float, float, tuple]] = deque(maxlen=256)  # (time.monotonic(), observed s, memoised s, key)
_probing = threading.Lock()
_unobserved = threading.local()  # .on: this thread's passes are no samples (a probe's warm-up pass)
_last_probe: dict[tuple, float] = {}  # the pass's memo key -> time.monotonic() of its last probe


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
    with _lock:
        _memo.clear()
        _seen.clear()
        _last_probe.clear()
        _clears[0] += 1


def generation() -> int:
    """How many times :func:`clear` ran: what is made from these numbers and kept (the sidebar's captions) keys
    on it, so that it is made again after a clear."""
    return _clears[0]


def _forward_key(model: LoadedModel, resolution: int, batch: int, path: str) -> tuple:
    return (*_model_key(model), "forward", int(resolution), int(batch), path)


def observe_pass(model: LoadedModel, batch: int, resolution: int, t: torch.Tensor, seconds: float) -> None:
    """A forward pass of ``model`` just took ``seconds`` (wall clock, queueing included): one sample of the server's
    speed against the memoised measurement of the same pass (a pass never measured is no sample, nor is a probe's
    warm-up pass)."""
    if getattr(_unobserved, "on", False):
        return
    try:
        key = _forward_key(model, resolution, batch, cost.path_name(model, int(t.max())))
    except Exception:  # noqa: BLE001 -- an observer never breaks a forward pass
        return
    base = _memo.get(key)
    if base:
        _seen.append((time.monotonic(), float(seconds), base, key))


def follow_speed() -> None:
    """From now on every forward pass in this process is a sample of the current speed (the app's entry file and
    bench/estimates.py call this once)."""
    if observe_pass not in network.PASS_OBSERVERS:
        network.PASS_OBSERVERS.append(observe_pass)


def _recent(now: float) -> list[tuple[float, float, tuple]]:
    """(observed s, memoised s, key) of the newest burst of samples: back from the newest one, while no gap exceeds
    :data:`STALE_S` and for at most :data:`RECENT_S`; none once the newest is older than :data:`STALE_S`. A quiet
    spell ends a burst, so what a class did before it left is not the speed of the quiet server after it (whose
    probe starts a new burst)."""
    samples = list(_seen)
    if not samples or now - samples[-1][0] > STALE_S:  # the burst is over: it says nothing of the server now
        return []
    newest = last = samples[-1][0]
    out = []
    for when, observed, base, key in reversed(samples):
        if last - when > STALE_S or newest - when > RECENT_S:
            break
        out.append((observed, base, key))
        last = when
    return out


def _clip(ratio: float) -> float:
    return min(max(ratio, SPEED_LIMITS[0]), SPEED_LIMITS[1])


def speed() -> float:
    """How many times longer a pass takes now than when it was measured: the mean ratio over the newest burst of
    samples, each within :data:`SPEED_LIMITS` (1.0 when there are none). The mean, not the median: a run's time is
    the sum of its passes, long waits in the queue included."""
    return _speed_of(_recent(time.monotonic()))


def _speed_of(burst: list[tuple[float, float, tuple]]) -> float:
    ratios = [_clip(observed / base) for observed, base, _ in burst]
    return statistics.fmean(ratios) if ratios else 1.0


def delay() -> float:
    """Seconds a pass takes now beyond its measurement, on average over the newest burst (negative on a server
    quieter than when it measured). Mostly the wait in the inference queue behind other sessions' passes, which a
    pass pays whatever its size: a batch of 100 terms waits as long as one step does, not 100 times longer."""
    return _delay_of(_recent(time.monotonic()))


def _delay_of(burst: list[tuple[float, float, tuple]]) -> float:
    extra = [base * (_clip(observed / base) - 1) for observed, base, _ in burst]
    return statistics.fmean(extra) if extra else 0.0


def _pass_now(model: LoadedModel, resolution: int, batch: int, t: int, burst: list) -> float:
    """Seconds of one pass now: its measurement times the mean ratio of its own samples in ``burst`` when there are
    :data:`PROBE_PASSES` of them (a measurement that was off, e.g. made during a rush, is corrected for that very
    pass), else its measurement plus the burst's mean extra wait (:func:`delay`), not less than a fifth of it."""
    base = forward_seconds(model, resolution, batch, t)
    key = _forward_key(model, resolution, batch, cost.path_name(model, t))
    own = [_clip(observed / b) for observed, b, k in burst if k == key]
    if len(own) >= PROBE_PASSES:
        return base * statistics.fmean(own)
    return max(base + _delay_of(burst), base * SPEED_LIMITS[0])


def speed_step() -> int:
    """The current speed in steps of :data:`SPEED_STEP` (what the sidebar's kept captions key on)."""
    return round(math.log(speed()) / math.log(SPEED_STEP))


def refresh_speed(model: LoadedModel, resolution: int, batch: int = 1) -> None:
    """When the pass an estimate needs most (``batch`` at ``resolution`` px, at t = T - 1) has fewer than
    :data:`PROBE_PASSES` samples in the newest burst, and this pass was last probed over ``max(STALE_S,
    PROBE_PASSES x its time / PROBE_SHARE)`` ago: :data:`PROBE_PASSES` such passes measure it, after one unobserved warm-up pass, at
    once when they take at most :data:`PROBE_SYNC_S`, else in a background thread. A quiet server is measured this way, and so is a pass
    nobody else runs. Only while following (:func:`follow_speed`): else the probe's passes would not be seen."""
    if observe_pass not in network.PASS_OBSERVERS:
        return
    t = model.schedule.T - 1
    key = _forward_key(model, resolution, batch, cost.path_name(model, t))
    base = _memo.get(key)
    if not base:  # this pass was never measured: nothing to compare a probe with
        return
    now = time.monotonic()
    if sum(k == key for _, _, k in _recent(now)) >= PROBE_PASSES:
        return
    if now - _last_probe.get(key, -math.inf) < max(STALE_S, (PROBE_PASSES + 1) * base / PROBE_SHARE):
        return
    if not _probing.acquire(blocking=False):
        return
    _last_probe[key] = now

    def probe() -> None:
        try:
            x = torch.zeros(int(batch), model.channels, int(resolution), int(resolution))
            # The first pass after a quiet spell runs 5-20 % slower than the next ones (threads and caches waking
            # up; bench/estimates.py), where a run's 50 passes are nearly all warm: it warms up unobserved.
            _unobserved.on = True
            try:
                model.eps(x, torch.full((int(batch),), t))
            finally:
                _unobserved.on = False
            for _ in range(PROBE_PASSES):
                model.eps(x, torch.full((int(batch),), t))
        except Exception:  # noqa: BLE001 -- a probe is advice; the estimate keeps its last speed
            pass
        finally:
            _probing.release()

    if (PROBE_PASSES + 1) * base <= PROBE_SYNC_S:
        probe()
    else:
        threading.Thread(target=probe, name="diffusion-lens-speed-probe", daemon=True).start()


def _at_current_speed(model: LoadedModel, resolution: int, passes, overhead_s: float, batch: int) -> cost.Estimate:
    """The estimate of ``passes`` (and the loop's ``overhead_s``) on the server as it is now: each pass as
    :func:`_pass_now` says, and the loop's own work, which shares the cores, :func:`speed` times slower."""
    res = int(resolution)
    cost.estimate(model, passes, overhead_s, lambda b, t: forward_seconds(model, res, b, t))  # measures what it needs
    refresh_speed(model, res, batch)
    burst = _recent(time.monotonic())
    est = cost.estimate(model, passes, overhead_s, lambda b, t: _pass_now(model, res, b, t, burst))
    return cost.Estimate(passes=est.passes, forward_s=est.forward_s, overhead_s=est.overhead_s * _speed_of(burst))


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
    batch = 2 if guidance else 1
    passes = cost.trajectory_passes(timesteps, batch)
    return _at_current_speed(model, res, passes, over * len(timesteps), batch)


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
    return _at_current_speed(model, res, passes, per_batch * n_batches, batch)
