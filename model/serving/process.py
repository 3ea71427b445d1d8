"""The process policy a server or a command sets once, at its edge: torch threads, glibc's allocator, the GIL.

A classroom server runs one Python process; every browser session is a thread in it, and all of them share one
read-only model. These knobs are process-wide, so nothing in a forward pass touches them: the app's edge
(``app/settings.py``, through :meth:`model.serving.service.Serving.configure_process`) or a command's ``main``
calls them, with the values of :class:`model.serving.settings.ServingSettings`.

* :func:`configure_threads`: torch's intra-op thread count (default: the CPU cores this process may use divided
  by the number of inference slots, at least 1, so that the slots together use every core without
  oversubscribing them).
* :func:`configure_allocator`: glibc's allocator serves big tensors from the heap and keeps freed memory for reuse,
  instead of its default of mapping every allocation over 128 KiB afresh (and trimming the heap top), which made a
  forward pass page-fault its activations in again and again once something else held on to memory: tens of
  thousands of minor page faults per 50-step 128-px trajectory that kept its records, against about one for
  diffusers' pipeline in the same process, and several per cent more time (``DIFFUSION_LENS_MALLOC=default
  bench/trajectory.py --only short`` prints the counts). It also keeps every thread on that one heap: a session's
  passes run in its script's thread, which glibc would give an arena of its own without these settings.
* :func:`configure_gil_switch`: Python's GIL switch interval.

Pure Python + torch; nothing here imports streamlit.
"""

from __future__ import annotations

import os
import sys

import torch

from model.serving.settings import ServingSettings

# glibc's mallopt parameters (malloc.h) and the values set: allocations up to 32 MiB (glibc's largest allowed
# threshold on 64-bit; a 256-px UNet activation is 16 MiB) come from the heap, and up to 256 MiB of free heap top is
# kept instead of being given back after every free.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 256 * 2**20
# Every thread allocates from the main heap, where the two settings above hold. glibc gives each new thread its own
# arena, made of mmap'd heaps of at most 64 MiB that are trimmed as they empty, and every session's script (a
# Streamlit thread) ran its passes there: a batch-50 pass at 64 px took 1.2-1.35x as long in a thread as in the main
# thread, 0.96-1.0x with one arena (bench/arena.py). The threads take the GIL in turn, so one arena's lock is not
# contended.
ARENA_MAX = 1
GIL_SWITCH_MIN_MS = 0.05


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset / cgroup CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_allocator(tuned: bool = True) -> bool:
    """Keep freed tensor memory for reuse (see the module docstring); idempotent.

    Returns True if glibc accepted all three settings (the thresholds and one arena for every thread), False where there is no glibc (macOS, Windows, musl) or
    ``tuned`` is False (``DIFFUSION_LENS_MALLOC=default``). The cost: the process keeps up to its high-water mark
    (plus 256 MiB of heap top) instead of shrinking.
    """
    if not tuned:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        ok = libc.mallopt(_M_ARENA_MAX, ARENA_MAX) == 1 and ok
        return libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False


def default_threads(concurrency: int) -> int:
    """Torch threads per pass when none is set: the available cores // the inference slots, at least 1."""
    return max(1, available_cores() // max(1, int(concurrency)))


def configure_threads(n: int | None = None, concurrency: int = ServingSettings.concurrency) -> int:
    """``torch.set_num_threads``: ``n``, else :func:`default_threads` for ``concurrency`` slots; returns it."""
    threads = max(1, int(n if n is not None else default_threads(concurrency)))
    torch.set_num_threads(threads)
    return threads


def configure_gil_switch(ms: float = ServingSettings.gil_switch_ms) -> float:
    """Set Python's GIL switch interval (``sys.setswitchinterval``) to ``ms`` (at least 0.05) and return it in s.

    A forward pass gives the GIL up around every torch op and waits to get it back, so beside other sessions' busy
    scripts it waited up to one interval per op (the convoy effect; ``bench/gil_convoy.py`` prints a pass's time
    beside busy threads at several intervals). Python's own is 5 ms; the app's default 1 ms.
    """
    seconds = max(GIL_SWITCH_MIN_MS, float(ms)) / 1000
    sys.setswitchinterval(seconds)
    return seconds


def configure(settings: ServingSettings) -> int:
    """All three, from ``settings``, allocator first; returns the torch thread count."""
    configure_allocator(settings.malloc != "default")
    configure_gil_switch(settings.gil_switch_ms)
    return configure_threads(settings.threads, settings.concurrency)


__all__ = [
    "available_cores",
    "configure",
    "configure_allocator",
    "configure_gil_switch",
    "configure_threads",
    "default_threads",
]
