"""Predict, then reveal (issue 26): on Forward, Denoise and Reverse trajectory the answer stays hidden until the
learner picks, and the answer shown is the one computed from the model (checked here by computing it again
independently). In presentation mode the class's picks are counted in a thread-safe server-wide tally."""

from __future__ import annotations

import math
import re
import threading

import numpy as np
import pytest
import torch
from conftest import app_test, assert_ok, image_captions

from app.compute import core
from app.ui import reveal
from model.diffusion.forward import q_sample
from model.diffusion.schedule import make_schedule
from model.images import figure
from model.images.tensors import load_image
from model.nets import hub, network

torch.set_num_threads(1)

FORWARD_Q, DENOISE_Q, GUIDE_Q = "forward_t900", "denoise_sharper", "trajectory_guidance"


def verdict(at) -> str:
    """The text of the answer box (success when the pick was right, warning when not), or ""."""
    return " ".join(e.value for e in [*at.success, *at.warning] if "the answer is" in e.value)


def picked(at, qid: str, option: str):
    at.radio(key=f"reveal_pick_{qid}").set_value(option).run()
    assert_ok(at)
    return at


# --- the tally -------------------------------------------------------------------------------------------------
def test_the_tally_counts_one_latest_pick_per_voter_across_threads():
    t = reveal.Tally()

    def vote(k: int) -> None:
        for i in range(300):
            t.vote("q", f"voter-{k}-{i}", "yes" if i % 3 else "no")

    threads = [threading.Thread(target=vote, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.counts("q", ["yes", "no", "maybe"]) == {"yes": 1600, "no": 800, "maybe": 0}
    t.vote("q", "voter-0-0", "maybe")  # a changed answer moves the vote
    assert t.counts("q") == {"yes": 1600, "no": 799, "maybe": 1}
    t.reset("q")
    assert t.counts("q", ["yes"]) == {"yes": 0}


def test_the_tally_is_bounded():
    t = reveal.Tally(max_voters=3)
    for i in range(5):
        t.vote("q", str(i), "a")
    assert t.counts("q") == {"a": 3}


# --- Forward ---------------------------------------------------------------------------------------------------
def expected_look(schedule_name: str, t: int = 900) -> str:
    snr = float(make_schedule(schedule_name).snr[t])
    return min(reveal.LOOKS, key=lambda o: abs(math.log(snr) - math.log(reveal.LOOKS[o])))


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
def test_forward_hides_the_answer_then_shows_the_computed_one(tiny_model_dir, schedule_name):
    at = app_test(tiny_model_dir, page="views/forward.py")
    at.session_state["fwd_schedule"] = schedule_name
    at.run()
    assert_ok(at)
    assert at.radio(key=f"reveal_pick_{FORWARD_Q}").value is None
    assert not any(c.startswith("x_t at t = 900, SNR") for c in image_captions(at))  # hidden
    assert not verdict(at)
    assert {"A", "B", "C"} <= set(image_captions(at))  # the candidate pictures, unlabelled by t
    want = expected_look(schedule_name)
    wrong = next(o for o in reveal.LOOKS if o != want)
    picked(at, FORWARD_Q, wrong)
    assert f"the answer is **{want}**" in verdict(at) and at.warning  # a wrong pick is told so, with the answer
    snr = float(make_schedule(schedule_name).snr[900])
    assert f"x_t at t = 900, SNR {snr:.2g}" in image_captions(at)
    picked(at, FORWARD_Q, want)
    assert any("Right" in s.value for s in at.success)


# --- Denoise ---------------------------------------------------------------------------------------------------
def independent_psnrs(model_dir, resolution: int = 32, seed: int = 0) -> dict[int, float]:
    """PSNR(x̂₀, x₀) at t = 50 and 500, computed here from the model without the app."""
    model = network.load_model(str(model_dir))
    x0 = load_image(core.SAMPLES["astronaut"].read_bytes(), resolution)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=x0.dtype)
    out = {}
    with torch.inference_mode():
        for t in reveal.SHARP_TS:
            x_t, _ = q_sample(model.schedule, x0, t, noise=eps)
            _, x0_hat = model.predict(x_t, t)
            out[t] = figure.psnr(x0_hat, x0)
    return out


def test_denoise_hides_the_answer_then_shows_the_computed_one(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/denoise.py")
    at.run()
    assert_ok(at)
    assert at.radio(key=f"reveal_pick_{DENOISE_Q}").value is None
    assert not any(c.startswith("x̂₀ at t = 50") for c in image_captions(at))
    assert not verdict(at)
    picked(at, DENOISE_Q, reveal.SHARP_OPTIONS[2])
    psnr = independent_psnrs(tiny_model_dir)
    caps = image_captions(at)
    for t in reveal.SHARP_TS:
        assert f"x̂₀ at t = {t}, PSNR {psnr[t]:.1f} dB" in caps, caps
    diff = psnr[50] - psnr[500]
    want = reveal.SHARP_OPTIONS[2] if abs(diff) < reveal.SAME_DB else reveal.SHARP_OPTIONS[0 if diff > 0 else 1]
    assert f"the answer is **{want}**" in verdict(at)


# --- Reverse trajectory: guidance --------------------------------------------------------------------------------
def test_guidance_hides_the_answer_then_shows_the_judged_one(tiny_model_dir):
    from model.evaluation.judge import load_judge
    from model.images.generate import generate

    at = app_test(page="views/trajectory.py")  # the bundled photo model: pure noise is generated with Fashion
    at.run()
    assert_ok(at)
    at.radio(key="traj_source").set_value("Pure noise (generate)").run()  # where guidance is on screen
    at.selectbox(key="traj_class").set_value("Sneaker").run()
    assert_ok(at)
    assert at.radio(key=f"reveal_pick_{GUIDE_Q}").value is None
    assert not any("judged" in c for c in image_captions(at)) and not verdict(at)
    picked(at, GUIDE_Q, reveal.GUIDE_OPTIONS[0])
    # the same samples, made here with the command line's generator, judged here
    fashion = network.load_model(str(hub.FASHION_MODEL))
    label = list(fashion.classes).index("Sneaker")
    judge = load_judge(reveal.JUDGE)
    hits = {}
    for w in (0.0, reveal.GUIDE_W):
        images = generate(fashion, [label] * reveal.GUIDE_N, w, reveal.GUIDE_STEPS, "ddim", 0.0, seed=0)
        hits[w] = int((judge.predict(images[:, 2:30, 2:30].copy()) == label).sum())
    caps = image_captions(at)
    assert f"w = 0: {hits[0.0]}/{reveal.GUIDE_N} judged Sneaker" in caps, caps
    assert f"w = {reveal.GUIDE_W:g}: {hits[reveal.GUIDE_W]}/{reveal.GUIDE_N} judged Sneaker" in caps, caps
    diff = (hits[reveal.GUIDE_W] - hits[0.0]) / reveal.GUIDE_N
    step = 1.5 / reveal.GUIDE_N
    want = (
        reveal.GUIDE_OPTIONS[0] if diff > step else reveal.GUIDE_OPTIONS[1] if -diff > step else reveal.GUIDE_OPTIONS[2]
    )
    assert f"the answer is **{want}**" in verdict(at)


# --- presentation mode: the class's answers ------------------------------------------------------------------------
def counts_line(at) -> str:
    lines = [m.value for m in at.markdown if m.value.startswith("**The class's answers**")]
    assert len(lines) == 1, lines
    return lines[0]


def test_presentation_mode_shows_the_class_answers(tiny_model_dir, server_env):
    from app.ui import present

    server_env(present.PRESENTER_ENV, "the-teachers-key")  # the presenter gives it (issue 32)
    presenter = app_test(tiny_model_dir, page="views/forward.py")
    presenter.query_params["present"] = "1"
    presenter.run()
    assert_ok(presenter)
    presenter.text_input(key=present.KEY_BOX).input("the-teachers-key").run()
    presenter.button(key=f"reveal_reset_{FORWARD_Q}").click().run()  # a new count
    assert counts_line(presenter).startswith("**The class's answers** (0)")
    options = list(reveal.LOOKS)
    student = app_test(tiny_model_dir, page="views/forward.py")  # another browser session, same server
    student.run()
    assert not [m for m in student.markdown if m.value.startswith("**The class's answers**")]  # presenter only
    picked(student, FORWARD_Q, options[0])
    picked(presenter, FORWARD_Q, options[2])
    line = counts_line(presenter)
    assert line.startswith("**The class's answers** (2)"), line
    assert f"{options[0]}: **1**" in line and f"{options[2]}: **1**" in line and f"{options[1]}: **0**" in line
    picked(student, FORWARD_Q, options[2])  # the student changes their mind: the vote moves
    presenter.run()
    line = counts_line(presenter)
    assert re.search(rf"{re.escape(options[2])}: \*\*2\*\*", line) and f"{options[0]}: **0**" in line, line


def test_strip_of_samples_is_one_picture():
    pic = reveal._strip(np.zeros((3, 32, 32), np.uint8))
    assert pic.size == (3 * 32 * 2, 32 * 2)
