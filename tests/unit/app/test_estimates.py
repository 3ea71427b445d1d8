"""Time estimates (app/compute/estimates.py on model/serving/cost.py) against the measured time of the same work.

Issue 20: every estimate shown lands within ±30 % of the measured time. Timings on a shared CI
machine are noisy, so the band here is wider (a factor 1.6 either way), but an estimate off by
2x (as before: 98 s quoted for a 35-s run) fails. The work runs a tiny UNet, so each test takes
about a second.
"""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace

import pytest
import torch

from app.compute import estimates
from model.diffusion import likelihood as lk
from model.diffusion import vlb_terms
from model.diffusion.schedule import make_schedule
from model.diffusion.trajectory import make_timesteps, sample_trajectory
from model.images.figure import record_run, start_sample
from model.nets.checkpoint_io import tiny_unet
from model.nets.network import LoadedModel
from model.serving import cost

RES = 32
SLACK = 1.6  # the ±30 % of the issue, widened for a noisy shared machine; 2x still fails


@pytest.fixture(autouse=True)
def _not_following_the_speed(monkeypatch):
    """These tests check the measurements themselves: no pass is a speed sample here, even after an AppTest of the
    app's entry (which follows the speed for the whole process) ran in this process (tests/unit/app/
    test_estimates_speed.py tests the following)."""
    from model.nets import network

    monkeypatch.setattr(network, "PASS_OBSERVERS", [])


@pytest.fixture
def tiny() -> LoadedModel:
    estimates.clear()
    unet = tiny_unet(RES)
    unet(torch.zeros(1, 3, RES, RES), torch.tensor([0]))  # the process's first pass pays one-off set-up
    sched = make_schedule("linear", T=300)  # the bound's 300 terms: 3 passes of 100 at 32 px
    return LoadedModel(unet=unet, schedule=sched, resolution=RES, source="tiny-for-estimates")


def _measured(run, repeats: int = 3) -> float:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        out.append(time.perf_counter() - start)
    return statistics.median(out)


def _run_trajectory(model: LoadedModel, ts: list[int], sampler: str, x0=None) -> None:
    """What the Reverse trajectory's Run does (app/backend_reverse.trajectory, without the progress bar)."""
    with torch.inference_mode():
        x_start, g = start_sample(model.schedule, x0, ts[0], 0, (1, model.channels, RES, RES))
        record_run(sample_trajectory(model.eps, model.schedule, x_start, ts, sampler, 0.0, g), x0)


def _assert_close(estimate, run, repeats: int = 3, attempts: int = 3) -> None:
    """``estimate()`` (measuring afresh) within the band of ``run``'s measured time, in one of ``attempts``.

    Other jobs on a shared machine can slow the calibration or the run by 3x for a few seconds, so
    each attempt measures both again, back to back; an estimate that is off by 2x is off in every one.
    """
    seen = []
    for _ in range(attempts):
        estimates.clear()
        est = estimate()
        measured = _measured(run, repeats)
        seen.append(f"estimate {est.seconds:.3f} s, measured {measured:.3f} s (ratio {est.seconds / measured:.2f})")
        if 1 / SLACK <= est.seconds / measured <= SLACK:
            return
    pytest.fail("; ".join(seen))


@pytest.mark.parametrize("sampler, steps", [("ddim", 20), ("ddpm", 50)])
def test_trajectory_estimate_matches_a_measured_run(tiny, sampler, steps):
    ts = make_timesteps(tiny.schedule.T - 1, steps)
    est = estimates.trajectory(tiny, RES, ts, sampler)
    assert est.passes == steps and est.overhead_s > 0
    _assert_close(lambda: estimates.trajectory(tiny, RES, ts, sampler), lambda: _run_trajectory(tiny, ts, sampler))


def test_one_step_estimate_matches_a_measured_step(tiny):
    run = lambda: _run_trajectory(tiny, [150], "ddim")  # noqa: E731
    _assert_close(lambda: estimates.trajectory(tiny, RES, [150]), run, repeats=15)


def test_all_terms_estimate_matches_a_measured_bound(tiny):
    x0 = torch.rand(1, 3, RES, RES) * 2 - 1
    batch = vlb_terms.default_batch_size(RES)
    est = estimates.all_terms(tiny, RES)
    assert est.passes == -(-tiny.schedule.T // batch)

    def run() -> None:
        lk.vb_terms(tiny.eps, tiny.schedule, x0, None, generator=torch.Generator().manual_seed(0), batch_size=batch)

    _assert_close(lambda: estimates.all_terms(tiny, RES), run, repeats=2)


def test_guidance_is_timed_on_the_doubled_batch(tiny, monkeypatch):
    seen = []
    monkeypatch.setattr(cost, "time_forward", lambda m, res, batch, t: seen.append(batch) or 0.01 * batch)
    monkeypatch.setattr(cost, "trajectory_overhead", lambda *a, **k: 0.0)
    est = estimates.trajectory(tiny, RES, make_timesteps(299, 10), guidance=True)
    assert seen == [2] and est.seconds == pytest.approx(10 * 0.02)


def test_each_measurement_is_made_once_and_kept_in_the_app(tiny, monkeypatch):
    ts = make_timesteps(299, 20)
    first = estimates.trajectory(tiny, RES, ts)
    sidebar = estimates.sidebar_step(tiny, RES)  # same model, size and batch: no new pass timed
    monkeypatch.setattr(cost, "time_call", lambda *a, **k: pytest.fail("measured twice"))
    assert estimates.trajectory(tiny, RES, ts) == first
    assert estimates.sidebar_step(tiny, RES) == sidebar
    assert not hasattr(tiny, "_costs") or not tiny._costs  # the memo is the app's, not the model's


def test_a_cold_first_call_is_not_taken_for_the_pass(monkeypatch):
    calls = iter([0.5] + [0.01] * 100)
    clock = [0.0]

    def fake_perf_counter() -> float:
        return clock[0]

    def call() -> None:
        clock[0] += next(calls)

    monkeypatch.setattr(cost.time, "perf_counter", fake_perf_counter)
    assert cost.time_call(call) == pytest.approx(0.01)  # the cold 0.5 s is set-up, not the pass
    calls, clock[0] = iter([12.0, 1.0]), 0.0
    assert cost.time_call(call) == pytest.approx(12.0)  # a long first call is its own measurement


def _fake_clock(monkeypatch, seconds: list[float]):
    """``time_call``'s clock advanced by ``seconds[i]`` on the i-th call; returns (call, how many calls were made)."""
    clock, made = [0.0], [0]
    monkeypatch.setattr(cost.time, "perf_counter", lambda: clock[0])

    def call() -> None:
        clock[0] += seconds[made[0]]
        made[0] += 1

    return call, made


def test_a_cold_first_call_is_never_averaged_in(monkeypatch):
    # a 256-px pass: 4.0 s cold, 3.3 s warm. Averaging the two quoted 3.65 s, 11 % high.
    call, made = _fake_clock(monkeypatch, [4.0, 3.3, 3.3, 3.3])
    assert cost.time_call(call) == pytest.approx(3.3)
    assert made[0] == 2  # a third call would take the measurement past SLOW_CALL_S: the first visitor waits 7.3 s
    # the same pass with its set-up taking it past 5 s was quoted alone, a third high
    call, made = _fake_clock(monkeypatch, [5.2, 3.9, 3.9])
    assert cost.time_call(call) == pytest.approx(3.9) and made[0] == 2
    # a pass just over the cheap window, its first call a fifth slower: the median of warm calls only
    call, made = _fake_clock(monkeypatch, [0.36, 0.3, 0.31, 0.29, 0.3])
    assert cost.time_call(call) == pytest.approx(0.305) and made[0] == 3
    # a cheap pass: the warm calls fill MIN_TOTAL_S and their median is taken, so one hiccup does not decide
    call, made = _fake_clock(monkeypatch, [0.05] + [0.01, 0.095] + [0.01] * 100)
    assert cost.time_call(call) == pytest.approx(0.01) and made[0] == 1 + 12


def test_passes_are_costed_on_the_arithmetic_path_of_their_t():
    # a model that runs bf16 up to t = 400 and fp32 above (model/serving/precision.py's choice)
    choice = SimpleNamespace(path_for=lambda t: SimpleNamespace(name="bf16" if int(t.max()) <= 400 else "fp32"))
    model = SimpleNamespace(precision=choice)
    asked = []

    def forward_s(batch: int, t: int) -> float:
        asked.append((batch, cost.path_name(model, t)))
        return {"bf16": 0.1, "fp32": 0.3}[cost.path_name(model, t)] * batch

    est = cost.estimate(model, cost.trajectory_passes(range(999, -1, -1)), 0.5, forward_s)
    assert sorted(asked) == [(1, "bf16"), (1, "fp32")]  # one measurement per path
    assert est.seconds == pytest.approx(401 * 0.1 + 599 * 0.3 + 0.5)
    # the bound's chunks: 20 of 50 timesteps, chunk maxima decide the path; a remainder is pro rata
    est = cost.estimate(model, cost.terms_passes(1000, 48), 0.0, forward_s)
    chunks = [list(range(999, -1, -1))[i : i + 48] for i in range(0, 1000, 48)]
    expected = sum((0.1 if max(c) <= 400 else 0.3) * len(c) for c in chunks)
    assert est.passes == len(chunks) and est.seconds == pytest.approx(expected)


def test_duration_and_suggested_steps():
    assert cost.duration(0.4) == "under a second" and cost.duration(12.2) == "about 12 s"
    assert cost.duration(480) == "about 8 min"
    assert cost.suggested_steps(0.05) == 50
    assert cost.suggested_steps(10.0) == 10
    assert cost.suggested_steps(1.0) == 20


def test_sidebar_captions_are_made_once_per_model_and_size_until_a_clear(tiny, monkeypatch):
    from app.ui import model_picker

    monkeypatch.setattr(cost, "time_forward", lambda m, res, batch, t: 0.01 * batch)
    monkeypatch.setattr(cost, "trajectory_overhead", lambda *a, **k: 0.0)
    first = model_picker.model_captions(tiny, RES)
    assert len(first) == 2 and "GMAC" in first[1]  # at its native size: no "trained at" caption
    assert model_picker.model_captions(tiny, RES) is first  # kept: no estimate arithmetic on a rerun
    assert model_picker.model_captions(tiny, 2 * RES) is not first
    estimates.clear()
    assert model_picker.model_captions(tiny, RES) is not first  # made again from fresh numbers
