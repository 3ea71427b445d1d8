"""Pure Plotly builders, tested without Streamlit."""

from __future__ import annotations

import numpy as np
import pytest

from app.charts import plots
from app.charts.render import noise_picture, picture
from model.diffusion.schedule import make_schedule
from model.images.figure import psnr


def test_schedule_chart_marks_t_and_has_both_weights():
    s = make_schedule("linear")
    fig = plots.schedule_chart(s, 300)
    names = [tr.name for tr in fig.data]
    assert any("signal" in n for n in names) and any("noise" in n for n in names)
    signal = fig.data[0].y
    assert len(signal) == 1000 and signal[0] > 0.99 and signal[-1] < 0.01
    marker = fig.data[2]
    assert list(marker.x) == [300, 300]
    assert marker.y[0] == pytest.approx(float(s.sqrt_alpha_bar[300]))
    assert fig.layout.shapes[0].x0 == 300


def test_histogram_chart_overlays_samples_and_normal_density():
    rng = np.random.default_rng(0)
    fig = plots.histogram_chart({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    assert [tr.type for tr in fig.data] == ["histogram", "histogram", "scatter"]
    xs, ys = np.asarray(fig.data[2].x), np.asarray(fig.data[2].y)
    assert np.trapezoid(ys, xs) == pytest.approx(1.0, abs=1e-3)


def test_line_chart_series_and_log_axis():
    fig = plots.line_chart([1, 2, 3], {"mse": [1.0, 0.1, 0.01]}, "t", "x", "y", marker_x=2, log_y=True)
    assert fig.layout.yaxis.type == "log"
    assert list(fig.data[0].y) == [1.0, 0.1, 0.01]


def test_pictures_upscale_without_smoothing_and_noise_normalisation():
    import torch

    x = torch.zeros(1, 3, 4, 4)
    x[0, :, 0, 0] = 1.0
    img = picture(x, 16)
    assert img.size == (16, 16)
    arr = np.asarray(img)
    assert (arr[:4, :4] == 255).all() and (arr[4:, 4:] == 128).all()  # hard edges: nearest-neighbour
    eps = torch.tensor([-3.0, 0.0, 3.0, 6.0]).reshape(1, 1, 1, 4).expand(1, 3, 1, 4)
    vals = np.asarray(noise_picture(eps, 4))[0, :, 0]
    assert list(vals) == [0, 128, 255, 255]
    assert psnr(x, x) == float("inf")
    assert psnr(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)) == pytest.approx(10 * np.log10(4.0))


def test_long_titles_wrap_to_fit_a_phone_and_the_margin_holds_them():
    from app.charts import inside, reverse

    assert plots.wrap_title("short") == ("short", 1)
    text, lines = plots.wrap_title("Sinusoidal time features: every t gets its own pattern (t = 500 dashed)")
    assert lines == 2 and text.replace("<br>", " ").startswith("Sinusoidal") and "<br>" in text
    figs = [
        plots.schedule_chart(make_schedule("cosine"), 10),
        inside.time_heatmap([0, 500, 999], np.zeros((3, 8)), 500),
        inside.attention_chart(np.full((1, 4, 4), 1 / 4), 0, 0),
        reverse.sweep_psnr_chart([100, 200], [30.0, 20.0]),
        reverse.sweep_chart([0, 500], [0.1, 0.2], [30.0, 10.0], 500),
    ]
    for fig in figs:
        title_lines = fig.layout.title.text.split("<br>")
        assert all(len(line) <= plots.TITLE_CHARS for line in title_lines), title_lines
        # the title sits in the top margin, which grows by a line's height per extra line, and the legend
        # below the plot: on a narrow phone chart neither runs into the other
        assert fig.layout.margin.t >= plots.TOP_PX + plots.TITLE_LINE_PX * (len(title_lines) - 1)
        middle_px = (1 - fig.layout.title.y) * fig.layout.height  # the title block is centred here
        block = plots.TITLE_LINE_PX * len(title_lines)
        assert plots.TOOLBAR_PX - 0.5 <= middle_px - block / 2 and middle_px + block / 2 < fig.layout.margin.t
        assert fig.layout.title.yanchor == "middle" and fig.layout.legend.y < 0


def test_house_template_is_plotly_white_for_the_traces_drawn():
    import plotly.io as pio

    white = pio.templates["plotly_white"]
    assert plots.TEMPLATE.layout == white.layout
    for kind in plots.TRACE_TYPES:
        assert plots.TEMPLATE.data[kind] == white.data[kind]


def test_marked_schedule_equals_a_fully_validated_build():
    """mark_schedule copies the base without validating it again (plots.copy_figure): the same figure as a copy
    validated in full with add_vline and add_trace."""
    import plotly.graph_objects as go

    s = make_schedule("cosine")
    base = plots.schedule_base(s)
    before = base.to_plotly_json()
    fig = plots.mark_schedule(base, s, 42)
    full = go.Figure(base).add_vline(x=42, line=dict(color=plots.MARKER_COLOUR, width=2, dash="dash"))
    marker = dict(size=10, color=[plots.SIGNAL_COLOUR, plots.NOISE_COLOUR])
    y = [s.sqrt_alpha_bar.numpy()[42], s.sqrt_one_minus_alpha_bar.numpy()[42]]
    full.add_trace(go.Scatter(x=[42, 42], y=y, mode="markers", marker=marker, name="t = 42", showlegend=False))
    assert fig.to_plotly_json() == full.to_plotly_json()
    assert base.to_plotly_json() == before  # the cached base is left as it was
