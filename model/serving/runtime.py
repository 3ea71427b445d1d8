"""The inference queue: at most N network forward passes at once, the others served first come, first served.

A classroom server runs one Python process; every browser session is a thread in it, and all of them share one
read-only model. An :class:`InferenceQueue` admits at most ``concurrency`` forward passes at a time
(``DIFFUSION_LENS_CONCURRENCY``, default 2: ``bench/concurrency.py`` prints p95 and throughput per slot count) and
queues the rest in arrival order. A long reverse trajectory takes one slot per forward pass, so it interleaves with
other students' single steps instead of blocking them. Re-entrant: a thread that already holds a slot passes
straight through (so wrapping both a sampler and the model's ``eps`` cannot deadlock). When the app enables it,
:mod:`model.serving.batching` sits in front of the queue: concurrent passes on the same model and shape take one
slot as one batch.

One queue belongs to one :class:`model.serving.service.Serving` object, built at the edge (the app, a command);
there is no process-wide queue. Threads, the allocator and the GIL are :mod:`model.serving.process`.

Queue waits are reported by :meth:`InferenceQueue.stats` (and each ``with queue.slot() as ticket`` yields a
:class:`SlotTicket` whose ``waited_s`` is filled in on entry).

Pure Python; nothing here imports streamlit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

DEFAULT_CONCURRENCY = 2  # bench/concurrency.py; ServingSettings.concurrency


class FairSemaphore:
    """A counting semaphore that admits waiters strictly in arrival order (FIFO).

    ``threading.Semaphore`` wakes an arbitrary waiter, so under load one session can be
    overtaken again and again; here a newcomer never overtakes someone already waiting.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = int(size)
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[object] = deque()
        self._in_use = 0
        self._released: dict[int, float] = {}  # thread ident -> time.monotonic() of its last release

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait for a slot in FIFO order; False if ``timeout`` (seconds) ran out first."""
        me = object()
        with self._cond:
            self._queue.append(me)
            admitted = False
            try:
                admitted = self._cond.wait_for(lambda: self._queue[0] is me and self._in_use < self.size, timeout)
                if admitted:
                    self._queue.popleft()
                    self._in_use += 1
                return admitted
            finally:
                if not admitted:
                    self._queue.remove(me)
                # the next in line may be admittable too (free slot, or we left the head)
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            if self._in_use <= 0:
                raise RuntimeError("release() without acquire()")
            self._in_use -= 1
            self._released[threading.get_ident()] = time.monotonic()
            if len(self._released) > 256:  # threads come and go (a session's script runs in its own): keep the newest
                for ident, _ in sorted(self._released.items(), key=lambda kv: kv[1])[:128]:
                    del self._released[ident]
            self._cond.notify_all()

    def __enter__(self) -> FairSemaphore:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def waiting(self) -> int:
        """Threads queued right now."""
        with self._cond:
            return len(self._queue)

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    def quiet_for(self, seconds: float) -> bool:
        """Nobody waits, no slot is held, and no thread but the caller released one in the last ``seconds``: a quiet
        moment, not just a quiet instant between two of other sessions' passes."""
        me, now = threading.get_ident(), time.monotonic()
        with self._cond:
            if self._queue or self._in_use:
                return False
            return all(now - at > seconds for ident, at in self._released.items() if ident != me)


@dataclass
class SlotTicket:
    """What :meth:`InferenceQueue.slot` yields: how long this caller queued, and behind how many."""

    waited_s: float = 0.0
    queued_behind: int = 0
    nested: bool = False


class _Stats:
    """Recent queue waits (bounded), for :meth:`InferenceQueue.stats`."""

    def __init__(self, keep: int = 512) -> None:
        self._lock = threading.Lock()
        self._waits: deque[float] = deque(maxlen=keep)
        self.served = 0
        self.max_wait_s = 0.0

    def add(self, wait: float) -> None:
        with self._lock:
            self._waits.append(wait)
            self.served += 1
            self.max_wait_s = max(self.max_wait_s, wait)

    def summary(self) -> dict[str, float]:
        with self._lock:
            waits = sorted(self._waits)
            served, worst = self.served, self.max_wait_s
        if not waits:
            return {"served": served, "recent": 0, "p50_wait_s": 0.0, "p95_wait_s": 0.0, "max_wait_s": worst}
        return {
            "served": served,
            "recent": len(waits),
            "p50_wait_s": waits[len(waits) // 2],
            "p95_wait_s": waits[min(len(waits) - 1, int(0.95 * len(waits)))],
            "max_wait_s": worst,
        }


class InferenceQueue:
    """At most ``concurrency`` forward passes at once, FIFO, re-entrant per thread (see the module docstring)."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.semaphore = FairSemaphore(concurrency)
        self._stats = _Stats()
        self._held = threading.local()

    @property
    def size(self) -> int:
        """The number of forward passes allowed at once."""
        return self.semaphore.size

    @contextmanager
    def slot(self) -> Iterator[SlotTicket]:
        """Hold one slot around a network forward pass.

        Usage::

            with queue.slot() as ticket:   # queues FIFO behind other sessions
                eps_hat = unet(x_t, t)
            ticket.waited_s                 # seconds spent queueing

        Re-entrant per thread. Changes no process-wide setting.
        """
        ticket = SlotTicket()
        if getattr(self._held, "depth", 0) > 0:  # this thread already holds a slot
            ticket.nested = True
            self._held.depth += 1
            try:
                yield ticket
            finally:
                self._held.depth -= 1
            return
        ticket.queued_behind = self.semaphore.waiting
        start = time.perf_counter()
        self.semaphore.acquire()
        ticket.waited_s = time.perf_counter() - start
        self._stats.add(ticket.waited_s)
        self._held.depth = 1
        try:
            yield ticket
        finally:
            self._held.depth = 0
            self.semaphore.release()

    def holds_slot(self) -> bool:
        """True if this thread is inside :meth:`slot` now (a pass nested in another)."""
        return getattr(self._held, "depth", 0) > 0

    def stats(self) -> dict[str, float]:
        """Queue health: slots, in use, waiting now, served, and recent p50/p95/max waits (s)."""
        sem = self.semaphore
        return {"slots": sem.size, "in_use": sem.in_use, "waiting": sem.waiting, **self._stats.summary()}


__all__ = ["DEFAULT_CONCURRENCY", "FairSemaphore", "InferenceQueue", "SlotTicket"]
