"""Dynamic batching across sessions: forward passes that ask for the same thing ride together.

A classroom server is one process; every browser session is a thread in it and all of them
share one read-only model (model/serving/runtime.py). Without batching each session's forward pass
queues alone for an inference slot. A :class:`DynamicBatcher` merges the passes that ask for
the same network on inputs of the same shape into one call, and hands each caller its own rows.

How one call goes (leader and followers; the batcher starts no thread of its own):

1. The call looks for an open batch with its key: the network's owner (the loaded model
   object), x's (C, H, W), dtypes and device, and whether there is a class label. If there is
   one with room (rows x H x W within ``max_pixels``, rows within ``max_rows``), it joins it
   and waits for the result (a follower). Otherwise it opens a new batch and leads it.
2. The leader waits up to ``max_wait_ms`` for others to join, but only while other calls are
   in flight (a lone session never waits), then queues for an inference slot
   (:func:`model.serving.runtime.inference_slot`: FIFO, the slot count holds) with its batch still
   open, so requests arriving while it queues join too.
3. Holding the slot, the leader closes the batch, concatenates x, t and y along dim 0, runs
   the network once and hands every caller its own rows, in order. If the network raises,
   every caller of that batch gets the exception. Either way the batch is finished, so no
   thread hangs and later calls start a fresh batch.

Re-entrant: a thread that already holds an inference slot (a nested pass) runs its pass
directly, unbatched, since waiting on a batch whose leader queues for a slot this thread
holds could deadlock.

Correctness rests on one property of the network: a row's output does not depend on the
other rows. True for diffusers' UNet2DModel in eval mode (GroupNorm normalises within a
sample; no BatchNorm statistics, no dropout); a bf16 or fp16 path may differ in the last
bits between batch sizes. tests/unit/model/serving/test_batching.py checks it in fp32.

Batching is server policy, not math: nothing is batched until the app calls :func:`enable`
(the Streamlit entry does, from ``DIFFUSION_LENS_BATCH_MS``: default 5, 0 turns it off).
Command lines and tests run unbatched unless they enable it. For benchmarks,
``DIFFUSION_LENS_STATS_FILE`` names a JSON file that the server rewrites every second with
:func:`stats` (batch sizes seen and the inference queue's waits).

Pure Python + torch; nothing here imports streamlit.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import torch

from model.serving import runtime

BATCH_MS_ENV = "DIFFUSION_LENS_BATCH_MS"
STATS_FILE_ENV = "DIFFUSION_LENS_STATS_FILE"
DEFAULT_BATCH_MS = 5.0  # how long a batch stays open for others to join (while others are in flight)
# Rows x H x W in one batch: 16 rows at 64 px, 4 at 128 px, 1 at 256 px (activation memory
# grows with it, and on a CPU a bigger batch does not cost less per row; a single request
# larger than this still runs, alone).
DEFAULT_MAX_PIXELS = 16 * 64 * 64
DEFAULT_MAX_ROWS = 64

# network(x (B, C, H, W), t (B,), y (B,) or None) -> output (B, C_out, H, W)
Network = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _owner(network: Network) -> int:
    """Identity of what a network call runs: the object of a bound method (``model._network``), else the callable."""
    return id(getattr(network, "__self__", network))


class _Batch:
    """Requests with one key, gathered until the leader holds a slot."""

    def __init__(self, key: tuple, network: Network) -> None:
        self.key = key
        self.network = network  # the leader's; every request in the batch has the same owner
        self.parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        self.rows = 0
        self.open = True
        self.opened = time.perf_counter()
        self.future: Future[list[torch.Tensor]] = Future()


class DynamicBatcher:
    """Merges concurrent forward passes with the same key into one network call (module docstring).

    ``max_wait_ms``: how long a new batch waits for others to join (only while other calls
    are in flight). ``max_pixels``: cap on rows x H x W per batch. ``max_rows``: cap on rows.
    """

    def __init__(
        self,
        max_wait_ms: float = DEFAULT_BATCH_MS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        if max_wait_ms < 0 or max_pixels < 1 or max_rows < 1:
            raise ValueError("max_wait_ms must be >= 0, max_pixels and max_rows >= 1")
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_pixels = int(max_pixels)
        self.max_rows = int(max_rows)
        self._cond = threading.Condition(threading.Lock())
        self._open: dict[tuple, _Batch] = {}
        self._in_flight = 0  # calls inside run() right now
        self._requests_per_batch: Counter[int] = Counter()
        self._rows_per_batch: Counter[int] = Counter()
        self._direct = 0  # calls run unbatched (nested, or shapes that cannot be split by row)
        self._failed = 0

    def run(self, network: Network, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``network(x, t, y)``, possibly as rows of a larger batch; returns this call's rows only.

        ``x``: (B, C, H, W) on the network's device, already padded to what it accepts.
        ``t``: (B,) timesteps (or one, broadcast). ``y``: (B,) class labels or None.
        Returns the network's output rows for this call, (B, C_out, H, W), in order.
        """
        b = x.shape[0]
        t = t.reshape(-1)
        if t.numel() == 1 and b > 1:
            t = t.expand(b)
        splittable = x.dim() == 4 and b > 0 and t.shape[0] == b and (y is None or y.reshape(-1).shape[0] == b)
        if runtime.holds_slot() or not splittable:  # a nested pass, or rows we cannot hand back
            with self._cond:
                self._direct += 1
            with runtime.inference_slot():
                return network(x, t, y)
        if y is not None:
            y = y.reshape(-1)
        key = (_owner(network), tuple(x.shape[1:]), x.dtype, x.device, t.dtype, None if y is None else y.dtype)
        row_pixels = x.shape[2] * x.shape[3]
        with self._cond:
            self._in_flight += 1
            batch = self._open.get(key)
            if batch is not None and not self._fits(batch.rows + b, row_pixels):
                self._close(batch)  # full for this request: it goes on as it is
                batch = None
            leader = batch is None
            if leader:
                batch = _Batch(key, network)
                self._open[key] = batch
            index = len(batch.parts)
            batch.parts.append((x, t, y))
            batch.rows += b
            if not self._fits(batch.rows + 1, row_pixels):
                self._close(batch)  # no room for another row: stop gathering
        try:
            if leader:
                self._lead(batch)
            return batch.future.result()[index]
        finally:
            with self._cond:
                self._in_flight -= 1

    def _fits(self, rows: int, row_pixels: int) -> bool:
        return rows <= self.max_rows and rows * row_pixels <= self.max_pixels

    def _close(self, batch: _Batch) -> None:
        """Stop a batch taking new requests (call with ``self._cond`` held); wakes its leader."""
        if batch.open:
            batch.open = False
            if self._open.get(batch.key) is batch:
                del self._open[batch.key]
            self._cond.notify_all()

    def _lead(self, batch: _Batch) -> None:
        """Gather, take a slot, run the batch and settle its future (always, whatever happens)."""
        try:
            with self._cond:
                if self._in_flight > 1:  # someone else is active: their next pass may come soon
                    deadline = batch.opened + self.max_wait_s
                    while batch.open and (left := deadline - time.perf_counter()) > 0:
                        self._cond.wait(left)
            with runtime.inference_slot():  # one slot for the whole batch; still open while queueing
                with self._cond:
                    self._close(batch)
                parts = batch.parts
                if len(parts) == 1:
                    x, t, y = parts[0]
                    outs = [batch.network(x, t, y)]
                else:
                    x = torch.cat([p[0] for p in parts])  # (sum B, C, H, W)
                    t = torch.cat([p[1] for p in parts])  # (sum B,)
                    y = None if parts[0][2] is None else torch.cat([p[2] for p in parts])
                    out = batch.network(x, t, y)
                    # clone: a caller keeps only its own rows alive, not the whole batch's output
                    outs = [o.clone() for o in out.split([p[0].shape[0] for p in parts])]
        except BaseException as exc:
            with self._cond:
                self._close(batch)
                self._failed += 1
                self._count(batch)
            batch.future.set_exception(exc)
            return
        with self._cond:
            self._count(batch)
        batch.future.set_result(outs)

    def _count(self, batch: _Batch) -> None:
        self._requests_per_batch[len(batch.parts)] += 1
        self._rows_per_batch[batch.rows] += 1

    def stats(self) -> dict:
        """Batches run, requests and rows in them, how many requests per batch (size -> batches), and more."""
        with self._cond:
            per = dict(sorted(self._requests_per_batch.items()))
            rows = dict(sorted(self._rows_per_batch.items()))
            direct, failed = self._direct, self._failed
        batches = sum(per.values())
        requests = sum(k * v for k, v in per.items())
        return {
            "enabled": True,
            "max_wait_ms": self.max_wait_s * 1000.0,
            "max_pixels": self.max_pixels,
            "batches": batches,
            "requests": requests,
            "rows": sum(k * v for k, v in rows.items()),
            "requests_per_batch": per,
            "rows_per_batch": rows,
            "mean_requests_per_batch": requests / batches if batches else 0.0,
            "max_requests_per_batch": max(per, default=0),
            "direct": direct,
            "failed_batches": failed,
        }


# ---------------------------------------------------------------------------------
# Process-wide policy: the app enables it once; everything else runs unbatched
# ---------------------------------------------------------------------------------

_lock = threading.Lock()
_active: DynamicBatcher | None = None
_configured = False
_stats_writer: threading.Thread | None = None
_stats_sources: dict[str, Callable[[], dict]] = {}  # name -> what else the stats file carries (add_stats_source)


def _env_ms() -> float:
    raw = os.environ.get(BATCH_MS_ENV, "").strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_BATCH_MS
    except ValueError:
        return DEFAULT_BATCH_MS


def enable(
    max_wait_ms: float | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> DynamicBatcher | None:
    """Batch this process's forward passes from now on; returns the batcher, or None when turned off.

    ``max_wait_ms`` None: ``$DIFFUSION_LENS_BATCH_MS`` (default 5), read on the first call only,
    so an app may call this on every run. ``0`` turns batching off. An explicit value replaces
    the batcher (its stats start afresh). Also starts the ``$DIFFUSION_LENS_STATS_FILE``
    writer, once, if that variable is set.
    """
    global _active, _configured
    with _lock:
        if max_wait_ms is None and _configured:
            return _active
        ms = _env_ms() if max_wait_ms is None else float(max_wait_ms)
        _active = DynamicBatcher(ms, max_pixels, max_rows) if ms > 0 else None
        _configured = True
        batcher = _active
    path = os.environ.get(STATS_FILE_ENV, "").strip()
    if path:
        _start_stats_writer(Path(path))
    return batcher


def disable() -> None:
    """Run every pass unbatched again (tests; a later :func:`enable` reads the environment anew)."""
    global _active, _configured
    with _lock:
        _active, _configured = None, False


def active() -> DynamicBatcher | None:
    """The process's batcher, or None when passes run unbatched."""
    return _active


def stats() -> dict:
    """The batcher's :meth:`DynamicBatcher.stats` (``{"enabled": False}`` when off) plus the queue's."""
    batcher = _active
    out = batcher.stats() if batcher is not None else {"enabled": False}
    out["queue"] = runtime.queue_stats()
    return out


def add_stats_source(name: str, source: Callable[[], dict]) -> None:
    """Also write ``source()`` under ``name`` in the ``$DIFFUSION_LENS_STATS_FILE`` file, every second.

    For what only the app can see (app/server_stats.py: Streamlit's media store and sessions). A source that
    raises writes ``{"error": ...}`` instead. Adding a name again replaces its source.
    """
    _stats_sources[name] = source


def _snapshot() -> dict:
    out = stats()
    for name, source in list(_stats_sources.items()):
        try:
            out[name] = source()
        except Exception as exc:  # a gauge must never stop the writer
            out[name] = {"error": repr(exc)}
    return out


def _start_stats_writer(path: Path, every_s: float = 1.0) -> None:
    """Once per process: a daemon thread that rewrites ``path`` with :func:`stats` (and the added sources) every ``every_s``."""
    global _stats_writer
    with _lock:
        if _stats_writer is not None:
            return

        def write_forever() -> None:
            tmp = path.with_name(path.name + ".tmp")
            while True:
                try:
                    tmp.write_text(json.dumps(_snapshot()))
                    tmp.replace(path)  # atomic: a reader never sees half a file
                except OSError:
                    pass
                time.sleep(every_s)

        _stats_writer = threading.Thread(target=write_forever, name="diffusion-lens-stats", daemon=True)
        _stats_writer.start()


__all__ = [
    "BATCH_MS_ENV",
    "DEFAULT_BATCH_MS",
    "DEFAULT_MAX_PIXELS",
    "DynamicBatcher",
    "STATS_FILE_ENV",
    "active",
    "add_stats_source",
    "disable",
    "enable",
    "stats",
]
