"""The rough edges of issue 17 found by trying the app as a new user, through AppTest on the tiny model."""

from __future__ import annotations

import torch
from conftest import APP_ENTRY, app_test
from streamlit.testing.v1 import AppTest

torch.set_num_threads(1)


def _app(tiny_model_dir, page: str | None = None) -> AppTest:
    return app_test(tiny_model_dir, page=page)


def _text(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.markdown, *at.caption, *at.latex, *at.info])


def test_forward_at_t0_does_not_write_x0_on_both_sides_and_counts_in_words(tiny_model_dir):
    at = _app(tiny_model_dir, "views/forward.py")
    at.session_state["fwd_t"] = 0
    at.session_state["fwd_chain"] = True
    at.run()
    assert not at.exception
    latex = [e.value for e in at.latex]
    assert any(r"x_t &= \sqrt{\bar\alpha_t}" in v and "(t = 0)" in v for v in latex), latex
    assert not any("x_{0} =" in v for v in latex)
    text = _text(at)
    assert "first noising step" in text and "the photo itself is x₀" in text
    assert "1 time," in text and "1 times" not in text
    assert any(c == "x_t by 1 chain step" for img in at.image for c in img.captions)


def test_histogram_caption_follows_the_snr_not_t(tiny_model_dir):
    at = _app(tiny_model_dir, "views/forward.py")
    for key, value in {"fwd_t": 505, "fwd_schedule": "cosine", "fwd_chain": True}.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception
    text = _text(at)
    assert "almost pure" not in text and "standardised noise part" in text  # cosine at t = 505: SNR ~ 0.94
    assert at.get("plotly_chart")  # the chart is labelled as the standardised noise part
    at.radio(key="fwd_schedule").set_value("linear")
    at.slider(key="fwd_t").set_value(900).run()
    assert "x_t itself is almost pure N(0, 1) noise" in _text(at)


def test_trajectory_defaults_to_t_start_300_and_says_why(tiny_model_dir):
    at = _app(tiny_model_dir, "views/trajectory.py")
    at.run()
    assert not at.exception
    assert at.slider(key="traj_t_start").value == 300
    assert "invents a new photo" in _text(at)
    at.slider(key="traj_t_start").set_value(5)
    at.slider(key="traj_steps").set_value(10).run()
    cost = " ".join(c.value for c in [*at.caption, *at.warning] if "ms per step" in c.value)
    assert "6 steps" in cost and "6 distinct timesteps lie" in cost
    at.slider(key="traj_t_start").set_value(0).run()
    cost = " ".join(c.value for c in [*at.caption, *at.warning] if "ms per step" in c.value)
    assert "1 step ×" in cost and "only 1 distinct timestep lies" in cost


def test_denoise_formula_keeps_x_t_symbolic(tiny_model_dir):
    at = _app(tiny_model_dir, "views/denoise.py")
    at.session_state["den_t"] = 0
    at.run()
    assert not at.exception
    latex = [e.value for e in at.latex]
    assert any(r"\hat x_0 &= \frac{x_t" in v and "(t = 0)" in v for v in latex), latex
    assert not any("x_{0} -" in v for v in latex)


def test_the_favicon_is_a_local_file():
    from pathlib import Path

    entry = Path(APP_ENTRY).read_text()
    assert ":material/" not in entry.split("set_page_config", 1)[1].split("\n", 1)[0]
    assert (Path(APP_ENTRY).parent / "favicon.png").is_file()


def test_current_t_markers_show_on_a_dark_background():
    """The black dashed marker vanished on Streamlit's dark theme: every marker is a mid grey now."""
    import numpy as np

    from app.charts import inside, plots, reverse
    from model.diffusion.schedule import make_schedule

    figs = [
        plots.schedule_chart(make_schedule("linear"), 300),
        plots.line_chart([1, 2], {"a": [1.0, 2.0]}, "t", "x", "y", marker_x=1),
        plots.histogram_chart({"a": np.zeros(10)}),
        reverse.sweep_chart([0, 10], [1.0, 0.5], [30.0, 10.0], 10, (0.5, 10.0)),
        reverse.psnr_chart([1, 2], [10.0, 12.0], [999, 0], marker_step=1),
        inside.time_heatmap([0, 1], np.zeros((2, 4)), 1),
    ]
    for fig in figs:
        colours = [s.line.color for s in fig.layout.shapes] + [tr.line.color for tr in fig.data if hasattr(tr, "line")]
        colours += [tr.marker.line.color for tr in fig.data if getattr(tr, "marker", None) is not None]
        assert "black" not in colours and plots.MARKER_COLOUR in colours + [s.line.color for s in fig.layout.shapes]
    # mid grey: far enough from both the light (#ffffff) and the dark (#0e1117) background
    grey = int(plots.MARKER_COLOUR[1:3], 16)
    assert 0x60 <= grey <= 0xA0
