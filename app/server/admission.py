"""Who may compute now: every admission control of the server, in one module.

A classroom server is one process shared by every student. What may run at once is decided in five places,
all in arrival order (first come, first served):

* **the inference queue**: every network forward pass takes one of ``DIFFUSION_LENS_CONCURRENCY`` slots
  (:class:`model.serving.runtime.InferenceQueue`, owned by the server's Serving object, :func:`app.settings.serving`);
* **the sweep lane**: Denoise's 40-t sweep queues its chunks here first, at most one per inference slot, so a
  slider step never waits behind more than the chunks already running (:func:`sweep_lane`);
* **the long-run lane**: each step of a long run (a reverse trajectory, the bound's terms) holds a place here while
  it computes, one less than the inference slots, so a slider step always finds a slot (:func:`long_run_lane`,
  used by :mod:`app.server.lanes`);
* **decode slots**: photo decodes running at once (:func:`decode_slots`, used by :mod:`app.server.uploads`);
* the particle lab's training queue: FIFO, with a waiter's place kept while it polls and one place per browser
  (:class:`TrainingQueue`, :func:`training_queue`, ``DIFFUSION_LENS_TRAIN_SLOTS``).

Each lane is a :class:`model.serving.runtime.FairSemaphore`, made once per process (``st.cache_resource``) from
the settings read at start-up (``app/settings.py``); :func:`stats` reports them together.
"""

from __future__ import annotations

import threading
from collections import deque

import streamlit as st

from app import settings
from model.serving.runtime import FairSemaphore


def long_run_slots() -> int:
    """Steps of long runs allowed at once: ``$DIFFUSION_LENS_LONG_RUN_SLOTS``, else one less than the inference
    slots (at least 1), so a slider step always finds a slot long runs leave free."""
    return settings.current().long_run_slots or max(1, settings.serving().queue.size - 1)


@st.cache_resource(show_spinner=False)
def sweep_lane() -> FairSemaphore:
    """The sweep's lane into the inference queue: at most one chunk per inference slot is queued or running.

    The sweep is background work beside a page's pictures, and one chunk is a forward pass of many t (about 0.2 s
    at 64 px on one core). Without the lane, a classroom arriving at Denoise queued every sweep's chunks in the
    inference queue (first come, first served) ahead of the single-t passes of everybody's slider steps; with it,
    a step waits for at most one chunk to finish, and the sweeps queue among themselves in the lane.
    """
    return FairSemaphore(settings.serving().queue.size)


QUIET_S = 0.5  # idle(): no other session's pass for this long


def idle() -> bool:
    """No other session has run a pass for :data:`QUIET_S`, nobody waits for the inference queue and no sweep chunk is
    queued or running: background work that can wait (refining a Denoise sweep past its coarse points) may take a
    pass now. A quiet moment, not an instant between two passes: 60 students sent one server about 10 passes a second
    (bench/load.py), and a sweep refined between them ran its chunks inside a student's slider step. The caller's own
    passes (the step's pictures, the sweep's coarse chunk) do not count."""
    lane = sweep_lane()
    return settings.serving().queue.semaphore.quiet_for(QUIET_S) and lane.in_use == 0 and lane.waiting == 0


@st.cache_resource(show_spinner=False)
def long_run_lane() -> FairSemaphore:
    """The lane every step of a long run holds while it computes (:func:`long_run_slots` places)."""
    return FairSemaphore(long_run_slots())


@st.cache_resource(show_spinner=False)
def decode_slots() -> FairSemaphore:
    """Photo decodes allowed at once: ``$DIFFUSION_LENS_DECODE_SLOTS`` (default 2)."""
    return FairSemaphore(settings.current().decode_slots)


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


@st.cache_resource(show_spinner=False)
def training_queue() -> TrainingQueue:
    """The particle lab's training queue: ``$DIFFUSION_LENS_TRAIN_SLOTS`` trainings at once (app/compute/particles.py)."""
    return TrainingQueue(settings.current().train_slots)


def stats() -> dict[str, dict[str, int]]:
    """Size, places in use and waiting, per control (the inference queue's waits are in its own stats)."""
    queue = settings.serving().queue
    lanes = {"sweep_lane": sweep_lane(), "long_run_lane": long_run_lane(), "decode_slots": decode_slots()}
    out = {
        "inference_queue": {"size": queue.size, "in_use": queue.semaphore.in_use, "waiting": queue.semaphore.waiting}
    }
    out |= {name: {"size": lane.size, "in_use": lane.in_use, "waiting": lane.waiting} for name, lane in lanes.items()}
    return out


def reset() -> None:
    """Make every lane again from the settings (tests, after changing a variable; a server keeps them)."""
    for made in (sweep_lane, long_run_lane, decode_slots, training_queue):
        made.clear()


__all__ = [
    "BUSY",
    "BrowserBusy",
    "TrainingQueue",
    "decode_slots",
    "idle",
    "long_run_lane",
    "long_run_slots",
    "reset",
    "stats",
    "sweep_lane",
    "training_queue",
]
