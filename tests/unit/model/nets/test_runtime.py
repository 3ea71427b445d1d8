"""model.serving.runtime: the process-wide fair inference queue and the torch thread setting."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from thread_helpers import run_threads

from model.serving import runtime
from model.serving.runtime import FairSemaphore, inference_slot


@pytest.fixture(autouse=True)
def fresh_queue():
    runtime.reset()
    yield
    runtime.reset()


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_limit_is_respected_with_many_threads(slots):
    runtime.reset(slots)
    lock = threading.Lock()
    active, peak = [0], [0]

    def body(_):
        for _ in range(5):
            with inference_slot():
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                time.sleep(0.002)
                with lock:
                    active[0] -= 1

    assert run_threads(12, body) == []
    assert peak[0] == slots  # reached, never exceeded
    stats = runtime.queue_stats()
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
    runtime.reset(1)
    with inference_slot() as outer:
        with inference_slot() as inner:  # same thread: no deadlock
            assert inner.nested
        assert not outer.nested and outer.waited_s >= 0.0
    # a second thread queues while the slot is held, and reports its wait
    hold = threading.Event()
    waited: list[float] = []

    def second():
        hold.wait()
        with inference_slot() as ticket:
            waited.append(ticket.waited_s)

    th = threading.Thread(target=second)
    with inference_slot():
        th.start()
        hold.set()
        while runtime.queue_stats()["waiting"] < 1:
            time.sleep(0.001)
        time.sleep(0.05)
    th.join(timeout=5)
    assert waited and waited[0] >= 0.04
    assert runtime.queue_stats()["max_wait_s"] >= 0.04


def test_slot_is_released_when_the_body_raises():
    runtime.reset(1)
    with pytest.raises(ValueError):
        with inference_slot():
            raise ValueError("boom")
    assert runtime.queue_stats()["in_use"] == 0
    with inference_slot():
        pass


def test_holds_slot_is_per_thread_and_follows_nesting():
    seen = []
    assert not runtime.holds_slot()
    with inference_slot():
        assert runtime.holds_slot()
        with inference_slot():
            assert runtime.holds_slot()
        assert runtime.holds_slot()
        th = threading.Thread(target=lambda: seen.append(runtime.holds_slot()))
        th.start()
        th.join(timeout=5)
    assert seen == [False]  # another thread holds nothing
    assert not runtime.holds_slot()


def test_concurrency_and_threads_from_environment(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LENS_CONCURRENCY", "3")
    runtime.reset()
    assert runtime.concurrency() == 3
    monkeypatch.setenv("DIFFUSION_LENS_CONCURRENCY", "nonsense")
    runtime.reset()
    assert runtime.concurrency() == runtime.DEFAULT_CONCURRENCY
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("DIFFUSION_LENS_THREADS", "1")
        assert runtime.configure_threads(1) == 1 and torch.get_num_threads() == 1
        assert runtime.configure_threads() == 1  # later calls keep the value in force
    finally:
        runtime.configure_threads(before)


def test_default_threads_share_the_cores_between_slots(monkeypatch):
    monkeypatch.delenv("DIFFUSION_LENS_THREADS", raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 8)
    monkeypatch.setattr(runtime, "_threads_set", None)
    before = torch.get_num_threads()
    try:
        runtime.reset(2)
        assert runtime.configure_threads() == 4  # 2 slots x 4 threads = 8 cores
        monkeypatch.setattr(runtime, "_threads_set", None)
        runtime.reset(16)
        assert runtime.configure_threads() == 1  # never below 1
    finally:
        runtime.configure_threads(before)


def test_runtime_does_not_import_streamlit():
    import inspect
    import re

    assert not re.search(r"^\s*(import|from)\s+streamlit", inspect.getsource(runtime), re.M)
    assert "model.serving.runtime" in sys.modules


_FAULTS_SCRIPT = """
import resource, sys, torch
from model.serving import runtime
from model.nets.network import load_model
from model.diffusion.trajectory import make_timesteps, sample_trajectory
runtime.configure_threads(1)
m = load_model(None)
x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
ts = make_timesteps(999, 12)
with torch.inference_mode():
    list(sample_trajectory(m.predict, m.schedule, x, ts[:2], "ddim"))  # warm-up
    p0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    records = list(sample_trajectory(m.predict, m.schedule, x, ts, "ddim"))  # every record kept
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - p0)
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_allocator_tuning_stops_page_faulting_a_recorded_trajectory():
    """With glibc's defaults, a 128-px trajectory that keeps its records page-faults its UNet
    activations in afresh at every step (tens of thousands of minor faults for 12 steps);
    configure_allocator (applied by configure_threads) keeps freed memory for reuse."""
    import subprocess

    root = Path(__file__).resolve().parents[4]

    def faults(env_value: str) -> int:
        env = {**os.environ, "DIFFUSION_LENS_MALLOC": env_value, "PYTHONPATH": str(root)}
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS_SCRIPT], env=env, cwd=root, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip().splitlines()[-1])

    tuned, default = faults("tuned"), faults("default")
    assert default > 10_000, default
    assert tuned * 5 < default, (tuned, default)


@pytest.mark.slow
def test_configure_allocator_is_once_per_process_and_can_be_switched_off():
    import subprocess

    root = Path(__file__).resolve().parents[4]
    code = "from model.serving import runtime; print(runtime.configure_allocator(), runtime.configure_allocator())"
    for value, expected in (("default", "False False"), ("", "True True")):
        env = {**os.environ, "DIFFUSION_LENS_MALLOC": value, "PYTHONPATH": str(root)}
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        want = expected if platform.libc_ver()[0] == "glibc" or value == "default" else "False False"
        assert out.stdout.strip() == want


def test_a_forward_pass_changes_no_process_wide_setting(monkeypatch):
    """Policy lives at the edge: holding an inference slot leaves torch's thread count as the caller set it."""
    monkeypatch.setattr(runtime, "_threads_set", None)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with runtime.inference_slot():
            pass
        assert torch.get_num_threads() == 3
        assert runtime._threads_set is None  # configure_threads was not called behind the caller's back
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    "env, expected_s",
    [(None, 0.001), ("2.5", 0.0025), ("0", 0.00005), ("fast", 0.001), ("", 0.001)],
)
def test_the_gil_switch_interval_comes_from_the_environment(monkeypatch, env, expected_s):
    import sys

    before = sys.getswitchinterval()
    if env is None:
        monkeypatch.delenv(runtime.GIL_SWITCH_ENV, raising=False)
    else:
        monkeypatch.setenv(runtime.GIL_SWITCH_ENV, env)
    try:
        assert runtime.configure_gil_switch() == pytest.approx(expected_s)
        assert sys.getswitchinterval() == pytest.approx(expected_s)
    finally:
        sys.setswitchinterval(before)
