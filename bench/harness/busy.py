"""bench/estimates.py's speed rows (issue 36, item 4): estimates against measured runs on an idle server, on one
busy with other students, and across the change (measured while idle, run while busy, and the other way round).

A *student* here is a thread of the benchmark's process that runs the pages' forward passes on the same model through
its own call (the inference queue, and the batcher if the app's batching is on), one batch-1 pass at a random t, then
``think_s`` of thought (a slider move every so often): what another session does to a server. The estimate is
:mod:`app.compute.estimates`' (following the server's speed, :func:`app.compute.estimates.follow_speed`); "frozen" is the same
estimate at speed 1, i.e. the measurement made once, which is what the app quoted before. ``delay`` and ``speed`` are
:func:`app.compute.estimates.delay` and :func:`app.compute.estimates.speed` when the estimate was made.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections.abc import Callable

import torch

from app.compute import estimates
from model.nets import network
from model.nets.network import LoadedModel

BAND = 0.30
SETTLE_S = 3.0  # after the students arrive or leave: this long for the speed to be seen


class Students:
    """``n`` threads, each running a batch-1 pass of ``model`` at ``res`` px and then thinking ``think_s``."""

    def __init__(self, model: LoadedModel, res: int, n: int, think_s: float) -> None:
        self.model, self.res, self.n, self.think_s = model, res, n, think_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _student(self, seed: int) -> None:
        rng = random.Random(seed)
        x = torch.randn(1, self.model.channels, self.res, self.res, generator=torch.Generator().manual_seed(seed))
        while not self._stop.is_set():
            self.model.eps(x, rng.randrange(self.model.schedule.T))
            self._stop.wait(self.think_s * rng.uniform(0.5, 1.5))

    def __enter__(self) -> Students:
        self._threads = [threading.Thread(target=self._student, args=(i,), daemon=True) for i in range(self.n)]
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for th in self._threads:
            th.join()


def _settle() -> None:
    """Wait while the server's state changes (students arrive or leave): longer than app.compute.estimates.STALE_S, so a
    quiet server is probed and a busy one has passes to show."""
    time.sleep(SETTLE_S)


def _frozen(est_fn: Callable) -> float:
    """The estimate at speed 1 (the measurement as made, what the app quoted before): asked while not following."""
    network.PASS_OBSERVERS.remove(estimates.observe_pass)
    seen = list(estimates._seen)
    estimates._seen.clear()
    try:
        return est_fn().seconds
    finally:
        estimates._seen.extend(seen)
        estimates.follow_speed()


def _row(name: str, label: str, phase: str, est_fn: Callable, run_fn: Callable, repeats: int) -> tuple:
    est = est_fn()
    speed, delay = estimates.speed(), estimates.delay()
    frozen = _frozen(est_fn)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_fn()
        runs.append(time.perf_counter() - start)
    measured = statistics.median(runs)
    ratio, old = est.seconds / measured, frozen / measured
    flag = "" if abs(ratio - 1) <= BAND else "  <-- outside ±30 %"
    print(
        f"{name:<10} {label:<22} {phase:<26} estimate {est.seconds:7.2f} s  measured {measured:7.2f} s  ratio "
        f"{ratio:5.2f}   (frozen {frozen:7.2f} s, ratio {old:5.2f}; speed x{speed:.2f}, delay {delay * 1000:+.0f} ms; "
        f"load {os.getloadavg()[0]:.1f}){flag}",
        flush=True,
    )
    return (name, f"{label}, {phase}", est.seconds, measured, 0.0)


def speed_rows(name: str, model: LoadedModel, res: int, work: list, students: int, think_s: float, repeats: int):
    """``work``: (label, estimate(), run()) tuples. For each: idle, busy, measured idle then run busy, measured busy
    then run idle."""
    estimates.follow_speed()
    rows = []
    who = f"beside {students} students"
    for label, est_fn, run_fn in work:
        estimates.clear()
        est_fn()  # measured on an idle server
        _settle()
        rows.append(_row(name, label, "idle", est_fn, run_fn, repeats))
        with Students(model, res, students, think_s):
            _settle()
            rows.append(_row(name, label, f"measured idle, run {who}", est_fn, run_fn, repeats))
            estimates.clear()
            est_fn()  # measured on the busy server
            _settle()
            rows.append(_row(name, label, who, est_fn, run_fn, repeats))
        _settle()
        rows.append(_row(name, label, "measured busy, run idle", est_fn, run_fn, repeats))
    return rows


def run_guided(model: LoadedModel, ts: list[int], w: float = 2.0) -> None:
    """The Fashion generator's run: one garment (class 7) from pure noise with guidance w, DDIM over ``ts``."""
    from model.images import generate

    with torch.inference_mode():
        for _ in generate.trajectory(model, [7], w, len(ts), "ddim", 0.0, torch.Generator().manual_seed(0)):
            pass
