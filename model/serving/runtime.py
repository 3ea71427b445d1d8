"""Sharing one CPU between many sessions: torch threads and a fair inference queue.

A classroom server runs one Python process; every browser session is a thread in it,
and all of them share one read-only model. Two process-wide knobs keep 30 sessions from
thrashing a small CPU:

* :func:`configure_threads` sets torch's intra-op thread count once, from the
  environment variable ``DIFFUSION_LENS_THREADS`` (default: the CPU cores this process
  may use divided by the number of inference slots, at least 1, so that the slots
  together use every core without oversubscribing them).
* :func:`inference_slot` is a context manager that admits at most
  ``DIFFUSION_LENS_CONCURRENCY`` network forward passes at a time (default
  :data:`DEFAULT_CONCURRENCY`) and queues the rest first come, first served. A long
  reverse trajectory takes one slot per forward pass, so it interleaves with other
  students' single steps instead of blocking them. Re-entrant: a thread that already
  holds a slot passes straight through (so wrapping both a sampler and the model's
  ``eps`` cannot deadlock). When the app enables it, :mod:`model.serving.batching` sits in front
  of this queue: concurrent passes on the same model and shape take one slot as one batch.

It also tunes glibc's allocator once per process (:func:`configure_allocator`): big tensors
are served from the heap and freed memory is kept for reuse, instead of glibc's default
of mapping every allocation over 128 KiB afresh (and trimming the heap top), which made a
forward pass page-fault its activations in again and again once something else held on to
memory: tens of thousands of minor page faults per 50-step 128-px trajectory that kept its
records, against about one for diffusers' pipeline in the same process, and several per cent
more time (``DIFFUSION_LENS_MALLOC=default bench/trajectory.py --only short`` prints the counts).

Queue waits are reported by :func:`queue_stats` (and each ``with inference_slot() as
wait`` yields a :class:`SlotTicket` whose ``waited_s`` is filled in on entry).

Pure Python + torch; nothing here imports streamlit.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

# 2 slots of cores // 2 threads each, chosen by measurement: bench/concurrency.py prints p95 and
# throughput per slot count, and the seconds per pass with 1 and 2 threads when the cores are busy
# (OpenMP threads spin at barriers); docs/classroom.md has the runs. Override with
# DIFFUSION_LENS_CONCURRENCY and DIFFUSION_LENS_THREADS.
DEFAULT_CONCURRENCY = 2
THREADS_ENV = "DIFFUSION_LENS_THREADS"
GIL_SWITCH_ENV = "DIFFUSION_LENS_GIL_SWITCH_MS"
GIL_SWITCH_DEFAULT_MS = 1.0
GIL_SWITCH_MIN_MS = 0.05
CONCURRENCY_ENV = "DIFFUSION_LENS_CONCURRENCY"


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset / cgroup CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return max(minimum, int(raw))
    except ValueError:
        return default


_threads_lock = threading.Lock()
_threads_set: int | None = None

MALLOC_ENV = "DIFFUSION_LENS_MALLOC"  # "default" leaves glibc's allocator as it is
# glibc's mallopt parameters (malloc.h) and the values set: allocations up to 32 MiB (glibc's
# largest allowed threshold on 64-bit; a 256-px UNet activation is 16 MiB) come from the heap,
# and up to 256 MiB of free heap top is kept instead of being given back after every free.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 256 * 2**20
_allocator_done: bool | None = None


def configure_allocator() -> bool:
    """Once per process: keep freed tensor memory for reuse (see module docstring).

    Returns True if glibc accepted both settings, False where there is no glibc (macOS,
    Windows, musl) or ``$DIFFUSION_LENS_MALLOC`` is ``default``. The cost: the process
    keeps up to its high-water mark (plus 256 MiB of heap top) instead of shrinking.
    """
    global _allocator_done
    with _threads_lock:
        if _allocator_done is not None:
            return _allocator_done
        _allocator_done = False
        if os.environ.get(MALLOC_ENV, "").strip().lower() == "default":
            return False
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
            ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
        except (OSError, AttributeError):
            return False
        _allocator_done = ok
        return ok


def configure_threads(n: int | None = None) -> int:
    """Set ``torch.set_num_threads`` once per process; later calls return the value in force.

    ``n`` defaults to ``$DIFFUSION_LENS_THREADS``, else available cores // inference
    slots (at least 1). Pass ``n`` explicitly to force a new value (tests, benchmarks).
    """
    global _threads_set
    with _threads_lock:
        if _threads_set is not None and n is None:
            return _threads_set
        default = max(1, available_cores() // concurrency())
        threads = n if n is not None else _env_int(THREADS_ENV, default)
        threads = max(1, int(threads))
        torch.set_num_threads(threads)
        _threads_set = threads
    configure_allocator()
    return threads


def configure_gil_switch(ms: float | None = None) -> float:
    """Set Python's GIL switch interval (``sys.setswitchinterval``) and return it in seconds.

    ``ms`` defaults to ``$DIFFUSION_LENS_GIL_SWITCH_MS``, else 1 ms (Python's own is 5 ms); at least 0.05 ms, and a
    value that is not a number gives the default. A forward pass gives the GIL up around every torch op and waits
    to get it back, so beside other sessions' busy scripts it waited up to one interval per op (the convoy effect;
    ``bench/gil_convoy.py`` prints a pass's time beside busy threads at several intervals). Called by the app's
    entry point; idempotent.
    """
    import sys

    if ms is None:
        try:
            ms = float(os.environ.get(GIL_SWITCH_ENV, "").strip() or GIL_SWITCH_DEFAULT_MS)
        except ValueError:
            ms = GIL_SWITCH_DEFAULT_MS
    seconds = max(GIL_SWITCH_MIN_MS, float(ms)) / 1000
    sys.setswitchinterval(seconds)
    return seconds


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
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Threads queued right now."""
        with self._cond:
            return len(self._queue)

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use


@dataclass
class SlotTicket:
    """What :func:`inference_slot` yields: how long this caller queued, and behind how many."""

    waited_s: float = 0.0
    queued_behind: int = 0
    nested: bool = False


class _Stats:
    """Recent queue waits (bounded), for :func:`queue_stats`."""

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


_slot_lock = threading.Lock()
_semaphore: FairSemaphore | None = None
_stats = _Stats()
_held = threading.local()


def concurrency() -> int:
    """The number of forward passes allowed at once (``$DIFFUSION_LENS_CONCURRENCY``)."""
    return _get_semaphore().size


def _get_semaphore() -> FairSemaphore:
    global _semaphore
    with _slot_lock:
        if _semaphore is None:
            _semaphore = FairSemaphore(_env_int(CONCURRENCY_ENV, DEFAULT_CONCURRENCY))
        return _semaphore


def reset(concurrency: int | None = None) -> None:
    """Rebuild the process-wide queue (tests and benchmarks only; never while slots are held)."""
    global _semaphore, _stats
    with _slot_lock:
        _semaphore = FairSemaphore(concurrency) if concurrency else None
        _stats = _Stats()


@contextmanager
def inference_slot() -> Iterator[SlotTicket]:
    """Hold one of the process-wide inference slots around a network forward pass.

    Usage::

        with inference_slot() as ticket:   # queues FIFO behind other sessions
            eps_hat = unet(x_t, t)
        ticket.waited_s                     # seconds spent queueing

    Re-entrant per thread. Changes no process-wide setting: threads and the allocator are the
    caller's policy (:func:`configure_threads`, called once by the app's entry file or a command).
    """
    ticket = SlotTicket()
    if getattr(_held, "depth", 0) > 0:  # this thread already holds a slot
        ticket.nested = True
        _held.depth += 1
        try:
            yield ticket
        finally:
            _held.depth -= 1
        return
    sem = _get_semaphore()
    stats = _stats
    ticket.queued_behind = sem.waiting
    start = time.perf_counter()
    sem.acquire()
    ticket.waited_s = time.perf_counter() - start
    stats.add(ticket.waited_s)
    _held.depth = 1
    try:
        yield ticket
    finally:
        _held.depth = 0
        sem.release()


def holds_slot() -> bool:
    """True if this thread is inside :func:`inference_slot` now (a pass nested in another)."""
    return getattr(_held, "depth", 0) > 0


def queue_stats() -> dict[str, float]:
    """Queue health: slots, in use, waiting now, served, and recent p50/p95/max waits (s)."""
    sem = _get_semaphore()
    return {"slots": sem.size, "in_use": sem.in_use, "waiting": sem.waiting, **_stats.summary()}


__all__ = [
    "DEFAULT_CONCURRENCY",
    "FairSemaphore",
    "SlotTicket",
    "available_cores",
    "concurrency",
    "configure_allocator",
    "configure_gil_switch",
    "configure_threads",
    "holds_slot",
    "inference_slot",
    "queue_stats",
    "reset",
]
