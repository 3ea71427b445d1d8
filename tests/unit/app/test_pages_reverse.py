"""AppTest: the "Denoise one step" and "Reverse trajectory" pages, through the entry file, on the tiny model."""

from __future__ import annotations

import pytest
import torch
from conftest import app_test, assert_ok, image_captions
from fakes import network_passes
from streamlit.testing.v1 import AppTest

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention


def _app(tiny_model_dir) -> AppTest:
    return app_test(tiny_model_dir, timeout=180)


def test_denoise_page(tiny_model_dir):
    at = _app(tiny_model_dir)
    at.switch_page("views/denoise.py")
    at.run()
    assert_ok(at)
    caps = image_captions(at)
    assert any(c.startswith("ε̂ − ε") and "MSE" in c for c in caps)
    assert any(c.startswith("x̂₀") and "PSNR" in c for c in caps)
    for start in ("x_t: the input", "ε: the true noise", "ε̂ = ε_θ", "ε̂ − ε", "x₀: the clean photo", "x̂₀: the estimate"):
        assert sum(c.startswith(start) for c in caps) == 1, start
    assert len(at.get("plotly_chart")) == 1
    at.slider(key="den_t").set_value(100).run()
    assert_ok(at)
    assert any(c == "x_t: the input at t = 100" for c in image_captions(at))
    at.switch_page("views/forward.py").run()
    at.switch_page("views/denoise.py").run()
    assert_ok(at)
    assert at.slider(key="den_t").value == 100


def test_trajectory_run_scrub_and_come_back(tiny_model_dir):
    from app.compute import models

    at = _app(tiny_model_dir)
    at.switch_page("views/trajectory.py")
    at.run()
    assert_ok(at)
    assert "traj_run" not in at.session_state
    assert any("ms per step" in c.value for c in [*at.caption, *at.warning])
    # a picture before Run (issue 36: a sentence and a picture before anything else): where the run will start
    assert any(
        c.startswith("Where the run starts: x_{t_start}, your photo noised to t = 300") for c in image_captions(at)
    )
    # the app's process-wide model cache: count the network's forward passes
    unet = models.get_model(str(tiny_model_dir)).unet
    with network_passes(unet) as calls:
        at.slider(key="traj_t_start").set_value(400)
        at.slider(key="traj_steps").set_value(10)
        at.button(key="traj_go").click().run()
        assert_ok(at)
        assert len(calls) == 10  # one forward pass per step
        run = at.session_state["traj_run"]["run"]
        assert run.num_steps == 10 and run.ts[0] == 400 and run.t_prevs[-1] == -1
        ran = at.session_state["traj_run"]["settings"]
        assert (ran.t_start, ran.steps, ran.sampler, ran.eta, ran.label) == (400, 10, "ddim", 0.0, None)
        assert len(at.get("plotly_chart")) == 2  # PSNR and ‖ε̂‖ (from a photo)
        assert {d.key for d in at.get("download_button")} == {"traj_dl_png", "traj_dl_gif", "traj_dl_slide"}

        # scrubbing reads the stored run: no network calls at all
        calls.clear()
        at.slider(key="traj_step").set_value(5).run()
        assert_ok(at)
        assert any(m.value.startswith("**Step 5 of 10**") for m in at.markdown)
        assert any(c.startswith("x_t, t = ") for c in image_captions(at))
        at.slider(key="traj_every").set_value(3).run()
        assert_ok(at)
        assert calls == []
    assert at.session_state["traj_run"]["run"] is run

    # another page and back: the run and the scrub position are still there
    at.switch_page("views/forward.py").run()
    assert_ok(at)
    at.switch_page("views/trajectory.py").run()
    assert_ok(at)
    assert at.session_state["traj_run"]["run"] is run
    assert at.slider(key="traj_step").value == 5
    assert any(m.value.startswith("**Step 5 of 10**") for m in at.markdown)
    assert len(at.image) >= 4

    # Run again with the same settings: served from the cache, same numbers
    at.button(key="traj_go").click().run()
    assert_ok(at)
    again = at.session_state["traj_run"]["run"]
    assert again.ts == run.ts and again.eps_rms == run.eps_rms


@pytest.mark.parametrize("sampler", ["DDPM", "DDIM"])
def test_trajectory_from_pure_noise(tiny_model_dir, sampler):
    at = _app(tiny_model_dir)
    at.switch_page("views/trajectory.py")
    at.run()
    at.radio(key="traj_source").set_value("Pure noise (generate)")
    at.radio(key="traj_sampler").set_value(sampler)
    at.slider(key="traj_steps").set_value(10)
    at.button(key="traj_go").click().run()
    assert_ok(at)
    run = at.session_state["traj_run"]["run"]
    assert run.psnr is None and run.ts[0] == 999 and run.num_steps == 10
    # x̂₀ against the run's result (no photo to compare with) and ‖ε̂‖
    charts = at.get("plotly_chart")
    assert len(charts) == 2 and "your photo" not in charts[0].proto.spec and "result" in charts[0].proto.spec
    assert any("**generates**" in i.value for i in at.info)  # a model of your own: no switch to the Fashion generator


def test_trajectory_settings_are_frozen_hashable_and_equal_by_value():
    import dataclasses

    from app.compute.reverse import SweepSettings, TrajectorySettings

    a = TrajectorySettings("abc", 32, "tiny", 300, "ddim", 0.0, 10, 0, label=3, guidance=2.0)
    b = TrajectorySettings("abc", 32, "tiny", 300, "ddim", 0.0, 10, 0, label=3, guidance=2.0)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != dataclasses.replace(a, seed=1) and a != dataclasses.replace(a, guidance=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.seed = 1  # type: ignore[misc]
    assert a.trajectory_args() == dict(
        image_key="abc", resolution=32, model="tiny", t_start=300, sampler="ddim", eta=0.0, steps=10, seed=0,
        label=3, guidance=2.0,
    )  # fmt: skip
    sweep = a.sweep(50.0)  # the slider's steps, not the run's
    assert sweep == SweepSettings("abc", 32, "tiny", "ddim", 0.0, 50, 0, 3, 2.0) and hash(sweep) == hash(a.sweep(50))
    assert sweep.sweep_args()["model"] == "tiny" and "t_start" not in sweep.sweep_args()
