"""Dynamic batching across sessions: forward passes that ask for the same thing ride together.

A classroom server is one process; every browser session is a thread in it and all of them
share one read-only model and one inference queue (:class:`model.serving.runtime.InferenceQueue`). Without
batching each session's forward pass queues alone for an inference slot. A :class:`DynamicBatcher` merges the passes that ask for
the same network on inputs of the same shape into one call, and hands each caller its own rows.

How one call goes (leader and followers; the batcher starts no thread of its own):

1. The call looks for an open batch with its key: the network's owner (the loaded model
   object), x's (C, H, W), dtypes and device, and whether there is a class label. If there is
   one with room (rows x H x W within ``max_pixels``, rows within ``max_rows``), it joins it
   and waits for the result (a follower). Otherwise it opens a new batch and leads it.
2. The leader waits up to ``max_wait_ms`` for others to join, but only while other calls are
   in flight (a lone session never waits), then queues for an inference slot
   (:meth:`model.serving.runtime.InferenceQueue.slot`: FIFO, the slot count holds) with its batch still
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

Batching is server policy, not math: a :class:`model.serving.service.Serving` object built with
``batching=True`` (the app's, from ``DIFFUSION_LENS_BATCH_MS``: default 5, 0 turns it off) owns one batcher;
command lines and tests run unbatched unless they build one.

Pure Python + torch; nothing here imports streamlit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future

import torch

from model.serving.runtime import InferenceQueue

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

    ``queue``: the inference queue a batch takes one slot of. ``max_wait_ms``: how long a new batch waits for others to join (only while other calls
    are in flight). ``max_pixels``: cap on rows x H x W per batch. ``max_rows``: cap on rows.
    """

    def __init__(
        self,
        queue: InferenceQueue,
        max_wait_ms: float = DEFAULT_BATCH_MS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        if max_wait_ms < 0 or max_pixels < 1 or max_rows < 1:
            raise ValueError("max_wait_ms must be >= 0, max_pixels and max_rows >= 1")
        self.queue = queue
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
        if self.queue.holds_slot() or not splittable:  # a nested pass, or rows we cannot hand back
            with self._cond:
                self._direct += 1
            with self.queue.slot():
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
            with self.queue.slot():  # one slot for the whole batch; still open while queueing
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


__all__ = ["DEFAULT_BATCH_MS", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_ROWS", "DynamicBatcher"]
