"""model.serving.process: the process policy an edge sets once (threads, allocator, GIL), and a Serving object
that changes none of it by itself."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest
import torch

from model.serving import process, runtime
from model.serving.service import Serving
from model.serving.settings import ServingSettings


def test_the_settings_give_the_queue_its_slots_and_torch_its_threads():
    assert Serving(ServingSettings(concurrency=3)).queue.size == 3
    assert Serving().queue.size == runtime.DEFAULT_CONCURRENCY
    before, switch = torch.get_num_threads(), sys.getswitchinterval()
    try:
        assert process.configure_threads(1) == 1 and torch.get_num_threads() == 1
        threads = Serving(ServingSettings(threads=1, gil_switch_ms=1.0)).configure_process()
        assert threads == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
        sys.setswitchinterval(switch)


def test_default_threads_share_the_cores_between_slots(monkeypatch):
    monkeypatch.setattr(process, "available_cores", lambda: 8)
    before = torch.get_num_threads()
    try:
        assert process.configure_threads(None, concurrency=2) == 4  # 2 slots x 4 threads = 8 cores
        assert process.configure_threads(None, concurrency=16) == 1  # never below 1
    finally:
        torch.set_num_threads(before)


def test_serving_does_not_import_streamlit():
    import inspect
    import re

    from model.serving import service

    for module in (runtime, process, service):
        assert not re.search(r"^\s*(import|from)\s+streamlit", inspect.getsource(module), re.M)


_FAULTS_SCRIPT = """
import resource, sys, torch
from model.serving import process
from model.nets.network import load_model
from model.diffusion.trajectory import make_timesteps, sample_trajectory
process.configure_allocator(sys.argv[1] == "tuned")
process.configure_threads(1)
m = load_model(None)
x = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
ts = make_timesteps(999, 12)
with torch.inference_mode():
    list(sample_trajectory(m.predict, m.schedule, x, ts[:2], "ddim"))  # warm-up
    p0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    records = list(sample_trajectory(m.predict, m.schedule, x, ts, "ddim"))  # every record kept
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - p0)
"""

# A pass in a thread, as a session's script runs it; then glibc's malloc_stats() (on stderr) lists the arenas in use.
_ARENAS_SCRIPT = """
import ctypes, sys, threading, torch
from model.serving import process
from model.nets.network import load_model
process.configure_allocator(sys.argv[1] == "tuned")
process.configure_threads(1)
m = load_model(None)


def run():
    with torch.inference_mode():
        m.eps(torch.zeros(8, 3, 64, 64), 999)


th = threading.Thread(target=run)
th.start()
th.join()
sys.stderr.flush()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_allocator_tuning_stops_page_faulting_a_recorded_trajectory():
    """With glibc's defaults, a 128-px trajectory that keeps its records page-faults its UNet
    activations in afresh at every step (tens of thousands of minor faults for 12 steps);
    configure_allocator keeps freed memory for reuse."""
    tuned, default = _faults("tuned"), _faults("default")
    assert default > 10_000, default
    assert tuned * 5 < default, (tuned, default)


def _run(script: str, malloc: str):
    """``script`` in a fresh interpreter (the allocator is set before any thread starts), with ``malloc`` as argv[1]."""
    import subprocess

    root = Path(__file__).resolve().parents[4]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", script, malloc], env=env, cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out


def _faults(malloc: str) -> int:
    return int(_run(_FAULTS_SCRIPT, malloc).stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_a_session_s_thread_allocates_from_the_one_tuned_heap():
    """A session's passes run in its script's thread, which glibc gives an arena of its own, where the tuning above
    does not hold (a batch-50 pass at 64 px took 1.2-1.35x as long in a thread as in the main thread:
    bench/arena.py). With the tuning every thread allocates from the main arena."""

    def arenas(malloc: str) -> int:
        return _run(_ARENAS_SCRIPT, malloc).stderr.count("Arena ")

    assert arenas("default") >= 2  # glibc's own: the thread got an arena of its own
    assert arenas("tuned") == 1


@pytest.mark.slow
def test_configure_allocator_can_be_switched_off_and_repeated():
    import subprocess

    root = Path(__file__).resolve().parents[4]
    code = (
        "from model.serving import process; "
        "print(process.configure_allocator(False), process.configure_allocator(), process.configure_allocator())"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("False True True" if platform.libc_ver()[0] == "glibc" else "False False False")


def test_a_forward_pass_changes_no_process_wide_setting():
    """Policy lives at the edge: running a pass through a Serving object leaves torch's threads and the GIL switch
    interval as the caller set them."""
    before, switch = torch.get_num_threads(), sys.getswitchinterval()
    try:
        torch.set_num_threads(3)
        out = Serving(ServingSettings(threads=1, gil_switch_ms=0.5)).run(
            lambda x, t, y: x + 1, torch.zeros(1, 1, 2, 2), torch.zeros(1, dtype=torch.long), None
        )
        assert out.sum() == 4
        assert torch.get_num_threads() == 3 and sys.getswitchinterval() == switch
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("ms", "expected_s"), [(1.0, 0.001), (2.5, 0.0025), (0.0, 0.00005)])
def test_the_gil_switch_interval_is_set_in_ms_and_never_below_its_floor(ms, expected_s):
    before = sys.getswitchinterval()
    try:
        assert process.configure_gil_switch(ms) == pytest.approx(expected_s)
        assert sys.getswitchinterval() == pytest.approx(expected_s)
    finally:
        sys.setswitchinterval(before)
