"""model.serving.batching: concurrent forward passes merged into one network call, each caller getting its own rows."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
import torch
from thread_helpers import run_threads

from model.serving import batching
from model.serving.batching import DynamicBatcher
from model.serving.runtime import InferenceQueue
from model.serving.service import Serving
from model.serving.settings import ServingSettings

QUEUE: dict[str, InferenceQueue] = {}  # this test's inference queue (one slot unless a test makes another)


@pytest.fixture(autouse=True)
def fresh():
    QUEUE["queue"] = InferenceQueue(1)
    yield
    QUEUE.clear()


def batcher(**kw) -> DynamicBatcher:
    """A batcher in front of this test's queue."""
    return DynamicBatcher(QUEUE["queue"], **kw)


class FakeNet:
    """A closed-form network: out = 2 x + t (+ 100 y), per row. Records the shape of every call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[int, tuple]] = []  # (rows, x.shape[1:])
        self.fail = False
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, x, t, y):
        with self._lock:
            self.calls.append((x.shape[0], tuple(x.shape[1:])))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the network broke")
        out = 2 * x + t.to(x.dtype).view(-1, 1, 1, 1)
        return out if y is None else out + 100 * y.to(x.dtype).view(-1, 1, 1, 1)


def expected(x, t, y=None):
    t = torch.as_tensor(t).reshape(-1).expand(x.shape[0])
    out = 2 * x + t.to(x.dtype).view(-1, 1, 1, 1)
    return out if y is None else out + 100 * y.to(x.dtype).view(-1, 1, 1, 1)


class SlotHolder:
    """Holds the only inference slot until released, so that callers pile up in one batch."""

    def __init__(self, queue: InferenceQueue | None = None) -> None:
        self.queue = queue or QUEUE["queue"]
        self._got, self._go = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self._thread.start()
        assert self._got.wait(10)

    def _hold(self) -> None:
        with self.queue.slot():
            self._got.set()
            self._go.wait(30)

    def release_when(self, batcher: DynamicBatcher, in_flight: int) -> None:
        deadline = time.monotonic() + 20
        while batcher._in_flight < in_flight and time.monotonic() < deadline:
            time.sleep(0.002)
        self._go.set()
        self._thread.join(10)


def test_each_caller_gets_its_own_rows_in_order_under_concurrency():
    net = FakeNet()
    b = batcher(max_wait_ms=2, max_pixels=10**6)
    results: dict[int, tuple] = {}
    n = 12

    def body(i):
        rows = 1 + i % 3
        x = torch.randn(rows, 3, 8, 8, generator=torch.Generator().manual_seed(i))
        t = torch.arange(rows) * 7 + i * 50  # a different t per row and per caller
        results[i] = (x, t, b.run(net, x, t))

    holder = SlotHolder()
    assert run_threads(n, body, lambda: holder.release_when(b, n)) == []
    for x, t, out in results.values():
        assert out.shape == x.shape
        torch.testing.assert_close(out, expected(x, t))
    assert sum(rows for rows, _ in net.calls) == sum(1 + i % 3 for i in range(n))
    assert len(net.calls) == 1, f"all {n} queued callers should ride in one batch: {net.calls}"
    s = b.stats()
    assert s["requests_per_batch"] == {n: 1}
    assert s["batches"] == 1 and s["requests"] == n and s["rows"] == sum(1 + i % 3 for i in range(n))
    assert s["max_requests_per_batch"] == n and s["failed_batches"] == 0


def test_many_rounds_of_concurrent_callers_stay_correct():
    net = FakeNet(delay=0.001)
    QUEUE["queue"] = InferenceQueue(2)
    b = batcher(max_wait_ms=1, max_pixels=10**6)

    def body(i):
        g = torch.Generator().manual_seed(i)
        for k in range(20):
            rows = 1 + (i + k) % 4
            x = torch.randn(rows, 3, 8, 8, generator=g)
            t = torch.full((rows,), i * 1000 + k)
            torch.testing.assert_close(b.run(net, x, t), expected(x, t))

    assert run_threads(8, body) == []
    s = b.stats()
    assert s["requests"] == 8 * 20 and s["batches"] == len(net.calls)
    assert b._in_flight == 0 and not b._open


def test_a_scalar_t_is_broadcast_over_the_rows():
    b = batcher()
    x = torch.randn(3, 1, 4, 4)
    torch.testing.assert_close(b.run(FakeNet(), x, torch.tensor(9)), expected(x, 9))


def test_different_shapes_and_label_presence_are_never_mixed():
    net = FakeNet()
    b = batcher(max_wait_ms=2, max_pixels=10**6)
    kinds = [((3, 8, 8), False), ((3, 16, 16), False), ((1, 8, 8), False), ((3, 8, 8), True)]
    results = {}
    n = 16

    def body(i):
        shape, labelled = kinds[i % len(kinds)]
        x = torch.randn(2, *shape)
        t = torch.tensor([i, i + 1])
        y = torch.tensor([i % 10, (i + 3) % 10]) if labelled else None
        results[i] = (x, t, y, b.run(net, x, t, y))

    holder = SlotHolder()
    assert run_threads(n, body, lambda: holder.release_when(b, n)) == []
    for x, t, y, out in results.values():
        torch.testing.assert_close(out, expected(x, t, y))
    assert len(net.calls) == len(kinds)  # one batch per key, each of one shape only
    assert sorted(shape for _, shape in net.calls) == sorted(shape for shape, _ in kinds)
    assert b.stats()["requests_per_batch"] == {n // len(kinds): len(kinds)}


def test_a_different_network_is_a_different_batch():
    a, c = FakeNet(), FakeNet()
    b = batcher(max_wait_ms=2)
    n = 6

    def body(i):
        x = torch.randn(1, 3, 8, 8)
        torch.testing.assert_close(b.run(a if i % 2 else c, x, torch.tensor([i])), expected(x, i))

    holder = SlotHolder()
    assert run_threads(n, body, lambda: holder.release_when(b, n)) == []
    assert len(a.calls) == 1 and len(c.calls) == 1


def test_the_pixel_cap_splits_batches():
    net = FakeNet()
    b = batcher(max_wait_ms=2, max_pixels=3 * 8 * 8)  # at most 3 rows of 8x8
    n = 7

    def body(i):
        x = torch.randn(1, 3, 8, 8)
        torch.testing.assert_close(b.run(net, x, torch.tensor([i])), expected(x, i))

    holder = SlotHolder()
    assert run_threads(n, body, lambda: holder.release_when(b, n)) == []
    assert all(rows <= 3 for rows, _ in net.calls)
    assert sum(rows for rows, _ in net.calls) == n
    # a single request over the cap still runs, alone
    x = torch.randn(5, 3, 8, 8)
    torch.testing.assert_close(b.run(net, x, torch.tensor(4)), expected(x, 4))


def test_an_error_reaches_every_caller_of_the_batch_and_the_batcher_keeps_working():
    net = FakeNet()
    net.fail = True
    b = batcher(max_wait_ms=2)
    n = 5
    got: list[BaseException] = []

    def body(i):
        try:
            b.run(net, torch.randn(1, 3, 8, 8), torch.tensor([i]))
        except RuntimeError as exc:
            got.append(exc)

    holder = SlotHolder()
    assert run_threads(n, body, lambda: holder.release_when(b, n)) == []
    assert len(got) == n and all("the network broke" in str(e) for e in got)
    assert len(net.calls) == 1  # they were one batch
    assert b.stats()["failed_batches"] == 1
    assert b._in_flight == 0 and not b._open
    assert QUEUE["queue"].stats()["in_use"] == 0  # the slot was given back
    net.fail = False
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(b.run(net, x, torch.tensor([1, 2])), expected(x, torch.tensor([1, 2])))


def test_nested_calls_do_not_deadlock():
    b = batcher(max_wait_ms=5)
    inner = FakeNet()

    def outer(x, t, y):  # a network that itself runs a pass through the batcher (e.g. a hook)
        return b.run(inner, x, t, y) + 1

    x = torch.randn(2, 3, 8, 8)
    done = []

    def body(i):
        torch.testing.assert_close(b.run(outer, x, torch.tensor([1, 2])), expected(x, torch.tensor([1, 2])) + 1)
        with QUEUE["queue"].slot():  # a caller that already holds the (only) slot
            torch.testing.assert_close(b.run(inner, x, torch.tensor(3)), expected(x, 3))
        done.append(i)

    assert run_threads(4, body) == []
    assert len(done) == 4
    s = b.stats()
    assert s["requests"] == 4  # the outer passes were batched ...
    assert s["direct"] == 4 + s["batches"]  # ... every nested one ran straight through


def test_a_lone_caller_does_not_wait_for_company():
    b = batcher(max_wait_ms=500)
    x = torch.randn(1, 3, 8, 8)
    b.run(FakeNet(), x, torch.tensor([0]))  # warm-up
    start = time.perf_counter()
    b.run(FakeNet(), x, torch.tensor([0]))
    assert time.perf_counter() - start < 0.25


def test_batched_unet_rows_equal_unbatched_rows(one_torch_thread):
    """fp32 tiny UNet through LoadedModel.raw: a row's output does not depend on the other rows."""
    from model.diffusion.schedule import make_schedule
    from model.nets.checkpoint_io import tiny_unet
    from model.nets.network import LoadedModel

    models = [
        LoadedModel(unet=tiny_unet(16), schedule=make_schedule("linear"), resolution=16, source="tiny"),
        LoadedModel(
            unet=tiny_unet(16, channels=1, num_class_embeds=11),
            schedule=make_schedule("linear"),
            resolution=16,
            source="tiny-cond",
            classes=tuple(f"class {i}" for i in range(10)),
            null_label=10,
        ),
    ]
    g = torch.Generator().manual_seed(0)
    jobs = []
    for i in range(8):
        m = models[i % 2]
        rows = 1 + i % 3
        x = torch.randn(rows, m.channels, 16, 16, generator=g)
        t = torch.randint(0, 1000, (rows,), generator=g)
        y = torch.randint(0, 10, (rows,), generator=g) if m.conditional else None
        jobs.append((m, x, t, y))
    alone = [m.raw(x, t, y) for m, x, t, y in jobs]  # no Serving object: each pass on its own

    serving = Serving(ServingSettings(concurrency=1, batch_ms=2), batching=True)
    b = serving.batcher
    served = {id(m): dataclasses.replace(m, serving=serving) for m in models}
    together: dict[int, torch.Tensor] = {}

    def body(i):
        m, x, t, y = jobs[i]
        together[i] = served[id(m)].raw(x, t, y)

    holder = SlotHolder(serving.queue)
    assert run_threads(len(jobs), body, lambda: holder.release_when(b, len(jobs))) == []
    assert b.stats()["requests_per_batch"] == {4: 2}  # one batch per model
    for i, out in enumerate(alone):
        torch.testing.assert_close(together[i], out, rtol=1e-5, atol=1e-5)


def test_a_serving_object_batches_only_when_asked_and_zero_turns_it_off():
    assert Serving().batcher is None  # tests and command lines run unbatched
    assert Serving(ServingSettings(batch_ms=0), batching=True).batcher is None
    serving = Serving(ServingSettings(batch_ms=7), batching=True)
    b = serving.batcher
    assert b is not None and b.max_wait_s == pytest.approx(0.007) and b.queue is serving.queue
    assert serving.stats()["enabled"] is True and "queue" in serving.stats()
    assert Serving().stats()["enabled"] is False


def test_the_stats_file_holds_the_stats_and_the_added_sources(tmp_path):
    path = tmp_path / "stats.json"
    serving = Serving(ServingSettings(stats_file=path), batching=True)
    serving.add_stats_source("app", lambda: {"sessions": 3})
    serving.add_stats_source("broken", lambda: 1 / 0)
    assert serving.start_stats_writer(every_s=0.05) is serving.start_stats_writer()  # once
    deadline = time.monotonic() + 20
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.01)
    data = json.loads(path.read_text())
    assert data["enabled"] is True and data["queue"]["slots"] == 2 and data["app"] == {"sessions": 3}
    assert "ZeroDivisionError" in data["broken"]["error"]
    assert Serving().start_stats_writer() is None  # no file set: no writer


def test_model_batching_does_not_import_streamlit():
    import inspect
    import re

    assert not re.search(r"^\s*(import|from)\s+streamlit", inspect.getsource(batching), re.M)
