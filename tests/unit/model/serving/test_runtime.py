"""model.serving.runtime: the fair inference queue (FIFO, a slot limit, re-entrant), one per Serving object."""

from __future__ import annotations

import threading
import time

import pytest
from thread_helpers import run_threads

from model.serving.runtime import FairSemaphore, InferenceQueue


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_limit_is_respected_with_many_threads(slots):
    queue = InferenceQueue(slots)
    lock = threading.Lock()
    active, peak = [0], [0]

    def body(_):
        for _ in range(5):
            with queue.slot():
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                time.sleep(0.002)
                with lock:
                    active[0] -= 1

    assert run_threads(12, body) == []
    assert peak[0] == slots  # reached, never exceeded
    stats = queue.stats()
    assert stats["slots"] == slots and stats["served"] == 60 and stats["in_use"] == 0 and stats["waiting"] == 0


def test_waiters_are_admitted_in_arrival_order():
    sem = FairSemaphore(1)
    assert sem.acquire()  # the main thread holds the only slot
    order: list[int] = []

    def waiter(i):
        assert sem.acquire()
        order.append(i)
        sem.release()

    threads = []
    for i in range(8):
        th = threading.Thread(target=waiter, args=(i,))
        th.start()
        threads.append(th)
        deadline = time.monotonic() + 5
        while sem.waiting < i + 1:  # make sure thread i queued before i + 1 starts
            assert time.monotonic() < deadline
            time.sleep(0.001)
    sem.release()
    for th in threads:
        th.join(timeout=10)
    assert order == list(range(8))


def test_newcomer_does_not_overtake_a_waiter():
    """A thread that arrives while others queue waits behind them even if a slot frees up."""
    sem = FairSemaphore(1)
    sem.acquire()
    got: list[str] = []
    first = threading.Thread(target=lambda: (sem.acquire(), got.append("first"), sem.release()))
    first.start()
    while sem.waiting < 1:
        time.sleep(0.001)
    sem.release()  # the slot goes to "first", queued, not to the main thread below
    assert sem.acquire(timeout=5)
    got.append("main")
    sem.release()
    first.join(timeout=5)
    assert got == ["first", "main"]


def test_timeout_leaves_the_queue_clean():
    sem = FairSemaphore(1)
    sem.acquire()
    assert sem.acquire(timeout=0.05) is False
    assert sem.waiting == 0
    sem.release()
    assert sem.acquire(timeout=1)
    sem.release()
    with pytest.raises(RuntimeError):
        sem.release()


def test_slot_is_reentrant_and_reports_wait():
    queue = InferenceQueue(1)
    with queue.slot() as outer:
        with queue.slot() as inner:  # same thread: no deadlock
            assert inner.nested
        assert not outer.nested and outer.waited_s >= 0.0
    # a second thread queues while the slot is held, and reports its wait
    hold = threading.Event()
    waited: list[float] = []

    def second():
        hold.wait()
        with queue.slot() as ticket:
            waited.append(ticket.waited_s)

    th = threading.Thread(target=second)
    with queue.slot():
        th.start()
        hold.set()
        while queue.stats()["waiting"] < 1:
            time.sleep(0.001)
        time.sleep(0.05)
    th.join(timeout=5)
    assert waited and waited[0] >= 0.04
    assert queue.stats()["max_wait_s"] >= 0.04


def test_slot_is_released_when_the_body_raises():
    queue = InferenceQueue(1)
    with pytest.raises(ValueError):
        with queue.slot():
            raise ValueError("boom")
    assert queue.stats()["in_use"] == 0
    with queue.slot():
        pass


def test_holds_slot_is_per_thread_and_follows_nesting():
    queue, other = InferenceQueue(), InferenceQueue()
    seen = []
    assert not queue.holds_slot()
    with queue.slot():
        assert queue.holds_slot()
        with queue.slot():
            assert queue.holds_slot()
        assert queue.holds_slot() and not other.holds_slot()  # per queue
        th = threading.Thread(target=lambda: seen.append(queue.holds_slot()))
        th.start()
        th.join(timeout=5)
    assert seen == [False]  # another thread holds nothing
    assert not queue.holds_slot()


def test_the_default_queue_has_the_default_slots():
    assert InferenceQueue().size == 2 == InferenceQueue(2).stats()["slots"]


def test_quiet_for_counts_other_threads_passes_not_the_callers(monkeypatch):
    """A quiet moment: no slot held, nobody waiting, and no other thread released one within the window; the caller's
    own passes do not count (a Denoise rerun refines its sweep right after its own pass)."""
    from model.serving import runtime

    now = [100.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: now[0])
    sem = FairSemaphore(2)
    assert sem.quiet_for(0.5)  # nothing ever ran
    with sem:
        assert not sem.quiet_for(0.5)  # a slot held
    assert sem.quiet_for(0.5)  # the caller's own pass

    def other() -> None:
        with sem:
            pass

    th = threading.Thread(target=other)
    th.start()
    th.join()
    assert not sem.quiet_for(0.5)  # another session's pass just now
    now[0] += 0.6
    assert sem.quiet_for(0.5)  # ... and no other since the window
    for _ in range(300):  # many threads come and go: the record stays bounded
        th = threading.Thread(target=other)
        th.start()
        th.join()
    assert len(sem._released) <= 257
