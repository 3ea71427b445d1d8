"""Estimates follow the server's current speed (issue 36, item 4): a pass measured once went stale, so a 50-step run
quoted "≈1.4 s" took 4.6 s on a busy server and the Fashion generator's "≈7.3 s" took 2.3 s on a quiet one. Every
forward pass the server runs is compared with the memoised measurement of the same pass, and the estimates are
scaled by the median ratio of the last minute; a quiet server is probed with a few passes."""

from __future__ import annotations

import pytest
import torch

from app.compute import estimates
from model.diffusion.schedule import make_schedule
from model.diffusion.trajectory import make_timesteps
from model.nets import network
from model.nets.checkpoint_io import tiny_unet
from model.nets.network import LoadedModel
from model.serving import cost

RES = 32
MEASURED_S = 0.01  # the memoised pass (time_forward stubbed): the ratios below are exact


@pytest.fixture
def tiny(monkeypatch) -> LoadedModel:
    monkeypatch.setattr(cost, "time_forward", lambda m, res, batch, t: MEASURED_S * batch)
    monkeypatch.setattr(cost, "trajectory_overhead", lambda *a, **k: 0.001)
    monkeypatch.setattr(network, "PASS_OBSERVERS", [])
    # samples stay current however slow the machine is; the tests of staleness move a fake clock past STALE_S
    monkeypatch.setattr(estimates, "STALE_S", 600.0)
    estimates.clear()
    yield LoadedModel(unet=tiny_unet(RES), schedule=make_schedule("linear", T=100), resolution=RES, source="tiny-speed")
    estimates.clear()


def fifty(model: LoadedModel) -> float:
    return estimates.trajectory(model, RES, make_timesteps(99, 50)).seconds


def test_an_estimate_follows_the_speed_of_the_passes_the_server_ran(tiny, monkeypatch):
    t = torch.tensor([99])
    quiet = fifty(tiny)  # measures the pass first (as a page would), nothing observed yet: the measurement as is
    assert quiet == pytest.approx(50 * (MEASURED_S + 0.001))
    for seconds in (0.02, 0.02, 0.02, 0.06):  # a class arrives: passes take 2x, one waited long in the queue
        estimates.observe_pass(tiny, 1, RES, t, seconds)
    assert estimates.speed() == pytest.approx(3.0)  # the mean: a run's time is the sum of its passes
    assert fifty(tiny) == pytest.approx(3 * quiet)
    later = [estimates.time.monotonic() + estimates.STALE_S + 1]
    monkeypatch.setattr(estimates.time, "monotonic", lambda: later[0])
    assert estimates.speed() == 1.0  # no pass since: the class's burst says nothing of the server now
    for seconds in (0.005, 0.005, 0.005):  # a quiet server is faster than the measurement
        estimates.observe_pass(tiny, 1, RES, t, seconds)
    assert estimates.speed() == pytest.approx(0.5) and fifty(tiny) == pytest.approx(0.5 * quiet)


def test_a_pass_never_measured_is_no_sample_and_the_speed_has_limits(tiny):
    estimates.observe_pass(tiny, 7, RES, torch.tensor([5]), 10.0)  # batch 7 was never measured
    assert estimates.speed() == 1.0
    fifty(tiny)
    for _ in range(3):
        estimates.observe_pass(tiny, 1, RES, torch.tensor([99]), 1000.0)
    assert estimates.speed() == estimates.SPEED_LIMITS[1]  # a hiccup of 100000x counts as the limit


def test_the_server_s_own_passes_are_observed_and_a_quiet_server_is_probed(tiny, monkeypatch):
    estimates.follow_speed()
    estimates.follow_speed()
    assert network.PASS_OBSERVERS == [estimates.observe_pass]  # once
    fifty(tiny)  # nothing ran lately: the estimate probed the speed with a few real passes (cheap ones: at once)
    assert len(estimates._recent(estimates.time.monotonic())) == estimates.PROBE_PASSES
    fifty(tiny)  # no second probe while the last pass is fresh
    assert len(estimates._recent(estimates.time.monotonic())) == estimates.PROBE_PASSES
    tiny.eps(torch.zeros(2, 3, RES, RES), torch.tensor([99, 99]))  # batch 2 never measured: no sample
    tiny.eps(torch.zeros(1, 3, RES, RES), 99)  # a page's pass: one more sample
    assert len(estimates._recent(estimates.time.monotonic())) == estimates.PROBE_PASSES + 1


def test_a_probe_warms_up_with_one_pass_it_does_not_count(tiny):
    """The first pass after a quiet spell ran 5-20 % slower than the next (bench/estimates.py): a probe made of it
    quoted a quiet server 1.3x too slow. The probe runs it first and counts only the passes after it."""
    ran = []
    network.PASS_OBSERVERS.append(lambda model, batch, res, t, seconds: ran.append(batch))
    estimates.follow_speed()
    fifty(tiny)
    assert len(ran) == estimates.PROBE_PASSES + 1  # the warm-up pass did run ...
    assert len(estimates._recent(estimates.time.monotonic())) == estimates.PROBE_PASSES  # ... and is no sample
    tiny.eps(torch.zeros(1, 3, RES, RES), 99)  # and the thread's next pass is a sample again
    assert len(estimates._recent(estimates.time.monotonic())) == estimates.PROBE_PASSES + 1


def test_the_sidebar_captions_are_made_again_when_the_speed_moves(tiny):
    from app.ui import model_picker

    first = model_picker.plain_caption(tiny, RES)
    assert model_picker.plain_caption(tiny, RES) is first
    for _ in range(3):
        estimates.observe_pass(tiny, 1, RES, torch.tensor([99]), 4 * MEASURED_S)
    slower = model_picker.plain_caption(tiny, RES)
    assert slower != first and "44 ms" in slower  # one step (10 ms pass, 1 ms loop) at 4x what was measured


def test_a_quiet_spell_ends_the_class_s_burst(tiny, monkeypatch):
    fifty(tiny)
    now = [1000.0]
    monkeypatch.setattr(estimates.time, "monotonic", lambda: now[0])
    t = torch.tensor([99])
    for _ in range(20):  # a class: passes at 3x
        estimates.observe_pass(tiny, 1, RES, t, 3 * MEASURED_S)
    assert estimates.speed() == pytest.approx(3.0)
    now[0] += estimates.STALE_S + 1  # the class has gone; then a probe's three passes on the quiet server
    for _ in range(3):
        estimates.observe_pass(tiny, 1, RES, t, MEASURED_S)
    assert estimates.speed() == pytest.approx(1.0)


def test_a_big_pass_waits_in_the_queue_as_long_as_a_small_one(tiny):
    ts = make_timesteps(99, 50)
    quiet = estimates.trajectory(tiny, RES, ts, "ddim", guidance=True)  # two passes' batch: 20 ms a step
    fifty(tiny)  # one pass measured: 10 ms
    for _ in range(3):  # a busy server: a 10-ms pass takes 30 ms, 20 ms of it in the queue
        estimates.observe_pass(tiny, 1, RES, torch.tensor([99]), 3 * MEASURED_S)
    assert estimates.delay() == pytest.approx(2 * MEASURED_S)
    busy = estimates.trajectory(tiny, RES, ts, "ddim", guidance=True)
    assert busy.forward_s == pytest.approx(quiet.forward_s + 50 * 2 * MEASURED_S)  # 40 ms a step, not 60
    assert busy.overhead_s == pytest.approx(3 * quiet.overhead_s)


def test_a_pass_measured_in_a_rush_is_corrected_by_its_own_samples(tiny, monkeypatch):
    ts, t = make_timesteps(99, 50), torch.tensor([99, 99])
    quiet = estimates.trajectory(tiny, RES, ts, "ddim", guidance=True)  # the guided pass measured: 20 ms
    for _ in range(estimates.PROBE_PASSES):  # it really takes 6 ms: its measurement was made in a rush
        estimates.observe_pass(tiny, 2, RES, t, 0.3 * 2 * MEASURED_S)
    assert estimates.trajectory(tiny, RES, ts, "ddim", True).forward_s == pytest.approx(0.3 * quiet.forward_s)


def test_the_probe_runs_the_pass_the_estimate_needs(tiny, monkeypatch):
    estimates.follow_speed()
    estimates.trajectory(tiny, RES, make_timesteps(99, 50), "ddim", guidance=True)
    keys = {key[-2] for _, _, _, key in estimates._seen}  # the batch of each sample's pass
    assert keys == {2} and len(estimates._seen) == estimates.PROBE_PASSES
