"""Issue 36 on Reverse trajectory and the generator: the guidance question where guidance is on screen, a plain
opening that names its figure, the step slider on the result after Run, a chart that compares x̂₀ with what the run
ends on, the ≥ 10 dB span on Compare, the recommended guidance as the default with w = 0 one click away."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import app_test, assert_ok
from test_teaching_order import elements, in_block, position, says, text

from app.charts import reverse
from app.compute import reverse as backend_reverse
from app.ui import reveal
from model.diffusion.guidance import guidance_help
from model.images import figure
from model.images.generate import default_guidance
from model.nets import hub, network

torch.set_num_threads(1)

GUIDE_Q = "trajectory_guidance"
NOISE = "Pure noise (generate)"
needs_fashion = pytest.mark.skipif(
    not reveal.guidance_available(), reason="the Fashion generator or its judge is not in this checkout"
)


def test_the_opening_is_plain_and_names_its_figure(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/trajectory.py")
    at.run()
    assert_ok(at)
    intro = next(text(n) for n, _ in elements(at) if type(n).__name__ == "Markdown" and "network" in text(n))
    assert "famous" not in intro and "$" not in intro
    assert "figure of the whole run" in intro  # which figure: the one this page draws further down


def test_after_run_the_step_slider_is_on_the_result(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/trajectory.py")
    at.run()
    at.slider(key="traj_steps").set_value(10).run()
    at.button(key="traj_go").click().run()
    assert_ok(at)
    run = at.session_state["traj_run"]["run"]
    assert at.slider(key="traj_step").value == len(run.frames) > 1  # not step 1, pure noise


def test_the_estimate_chart_compares_with_the_runs_result(tiny_model_dir):
    at = app_test(tiny_model_dir, page="views/trajectory.py")
    at.run()
    at.slider(key="traj_steps").set_value(10).run()
    at.button(key="traj_go").click().run()
    assert_ok(at)
    run = at.session_state["traj_run"]["run"]
    final = torch.from_numpy(run.final).float() / 127.5 - 1
    want = [figure.psnr(torch.from_numpy(f.x0_hat).float() / 127.5 - 1, final) for f in run.frames]
    steps, got = backend_reverse.psnr_to_result(run)
    assert steps == [f.index + 1 for f in run.frames] and got == pytest.approx(want)
    fig = reverse.estimate_chart(steps, got, [run.ts[s - 1] for s in steps], 1, (steps, [20.0] * len(steps)))
    names = [tr.name for tr in fig.data]
    assert any("result" in n for n in names) and any("photo" in n for n in names)
    lo, hi = fig.layout.yaxis.range or (min(v for v in got if np.isfinite(v)), max(v for v in got if np.isfinite(v)))
    assert hi - lo >= reverse.PSNR_MIN_SPAN_DB - 1e-9
    charts = at.get("plotly_chart")
    assert any("the run's result" in c.proto.spec for c in charts)  # the page draws it


def test_a_flat_compare_chart_spans_ten_db():
    class R:  # what compare_chart reads of a figure.Run
        def __init__(self, psnr):
            self.ts, self.psnr, self.eps_rms = (900, 500, 0), psnr, (1.0, 0.5, 0.1)

    fig = reverse.compare_chart({"A": R((18.6, 18.8, 18.9)), "B": R((18.7, 18.7, 18.8))}, 300)
    lo, hi = fig.layout.yaxis.range
    assert hi - lo >= reverse.PSNR_MIN_SPAN_DB and lo <= 18.6 and hi >= 18.9


def test_guidance_help_explains_instead_of_citing_a_file():
    class M:
        guidance_interval = (0, 300)

    help_text = guidance_help(M())
    assert "bench/" not in help_text and ".py" not in help_text


@needs_fashion
def test_the_fashion_generator_defaults_to_its_recommended_guidance():
    fashion = network.load_model(str(hub.FASHION_MODEL))
    assert fashion.recommended_guidance == 2.0 and default_guidance(fashion) == 2.0  # the app's and the command's


@needs_fashion
def test_the_guidance_question_is_asked_where_guidance_is_on_screen():
    at = app_test(page="views/trajectory.py")  # the bundled photo model; pure noise is generated with Fashion
    at.run()
    assert_ok(at)
    assert not [r for r in at.radio if r.key == f"reveal_pick_{GUIDE_Q}"]  # photo source: no guidance on screen
    at.radio(key="traj_source").set_value(NOISE).run()
    assert_ok(at)
    q = position(at, in_block(f"reveal_{GUIDE_Q}"))
    slider = position(at, lambda n, ps: getattr(n, "key", None) == "traj_guidance")
    assert slider < q < position(at, says("All 10 classes in one batch"))  # after guidance, before samples of it
    # the recommended w, said on the page, and w = 0 one click away
    assert at.slider(key="traj_guidance").value == 2.0
    assert any("card recommends" in c.value for c in at.caption)
    at.button(key="traj_w0").click().run()
    assert_ok(at)
    assert at.slider(key="traj_guidance").value == 0.0
