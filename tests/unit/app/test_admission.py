"""One module for the server's admission controls (issue 33, item 5): the inference queue, the sweep lane, the
long-run lane and the decode slots, made once from the settings and reported together."""

from __future__ import annotations

import threading
import time

from app import settings
from app.server import admission
from model.serving.runtime import FairSemaphore


def test_every_control_is_sized_from_the_settings_and_made_once(server_env):
    server_env("DIFFUSION_LENS_CONCURRENCY", "3")
    server_env("DIFFUSION_LENS_DECODE_SLOTS", "4")
    assert admission.sweep_lane().size == 3  # one sweep chunk per inference slot
    assert admission.long_run_lane().size == 2 == admission.long_run_slots()  # one slot left to slider steps
    assert admission.decode_slots().size == 4
    assert admission.sweep_lane() is admission.sweep_lane() and admission.decode_slots() is admission.decode_slots()
    assert admission.stats() == {
        "inference_queue": {"size": 3, "in_use": 0, "waiting": 0},
        "sweep_lane": {"size": 3, "in_use": 0, "waiting": 0},
        "long_run_lane": {"size": 2, "in_use": 0, "waiting": 0},
        "decode_slots": {"size": 4, "in_use": 0, "waiting": 0},
    }
    server_env("DIFFUSION_LENS_LONG_RUN_SLOTS", "1")
    assert admission.long_run_lane().size == 1 and settings.serving().queue.size == 3


def test_a_lane_is_a_fifo_context_manager_that_releases_on_errors(server_env):
    server_env("DIFFUSION_LENS_DECODE_SLOTS", "1")
    lane = admission.decode_slots()
    with lane:
        assert admission.stats()["decode_slots"]["in_use"] == 1
        waiting = threading.Thread(target=lambda: lane.__enter__() and lane.__exit__())
        waiting.start()
        deadline = time.monotonic() + 30
        while lane.waiting < 1 and time.monotonic() < deadline:  # the second decode queues behind the first
            waiting.join(0.001)
        assert lane.waiting == 1 and lane.in_use == 1
    waiting.join(10)
    assert not waiting.is_alive() and lane.in_use == 0
    try:
        with lane:
            raise ValueError("a decode failed")
    except ValueError:
        pass
    assert lane.in_use == 0 and isinstance(lane, FairSemaphore)
