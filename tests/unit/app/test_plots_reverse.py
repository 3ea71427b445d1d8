"""app/charts/reverse.py: pure Plotly builders, tested without Streamlit."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

from app.charts import reverse as pr


def _vlines(fig: go.Figure) -> list[float]:
    return [s.x0 for s in fig.layout.shapes if s.x0 == s.x1 and s.type == "line"]


def test_sweep_chart_two_panels_and_marker():
    ts = [0, 333, 666, 999]
    fig = pr.sweep_chart(ts, [0.5, 0.2, 0.1, 0.05], [35.0, 20.0, 12.0, math.inf], 333, (0.2, 20.0))
    assert isinstance(fig, go.Figure)
    assert [tr.yaxis for tr in fig.data] == ["y", "y2", "y", "y2"]  # MSE in the top panel, PSNR in the bottom one
    assert list(fig.data[0].x) == ts and list(fig.data[0].y) == [0.5, 0.2, 0.1, 0.05]
    assert fig.data[1].y[-1] is None  # inf PSNR is a gap, not a crash
    assert list(fig.data[2].x) == [333] and list(fig.data[3].y) == [20.0]
    # two panels, not two y-axes over one plot; powers of ten on the log axis, not "100µ"
    assert fig.layout.yaxis2.overlaying is None and fig.layout.yaxis.type == "log"
    assert list(fig.layout.yaxis.ticktext) == ["0.01", "0.1", "1"]  # powers of ten in plain numbers (log_axis)
    assert fig.layout.yaxis.domain != fig.layout.yaxis2.domain
    assert _vlines(fig) == [333, 333]  # the current t in both panels


def test_sweep_chart_without_current_point():
    fig = pr.sweep_chart([0, 10], [1.0, 0.5], [30.0, 10.0], 10)
    assert len(fig.data) == 2 and _vlines(fig) == [10, 10]


def test_psnr_chart_marks_step_and_carries_t():
    fig = pr.psnr_chart([1, 2, 3], [10.0, 15.0, 22.0], [999, 500, 0], marker_step=2)
    assert len(fig.data) == 1
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].customdata) == [999, 500, 0]
    assert _vlines(fig) == [2]
    assert "PSNR" in fig.layout.title.text


def test_eps_norm_chart_has_unit_reference():
    fig = pr.eps_norm_chart([1, 2], [1.0, 0.4], [999, 0], marker_step=1)
    hlines = [s.y0 for s in fig.layout.shapes if s.y0 == s.y1]
    assert hlines == [1.0] and _vlines(fig) == [1]
    assert list(fig.data[0].y) == [1.0, 0.4]


def test_step_chart_without_marker():
    fig = pr.step_chart([1], [float("nan")], [5], "title", "y")
    assert list(fig.data[0].y) == [None] and not fig.layout.shapes


def test_marked_sweep_equals_one_built_with_add_vline_and_rows():
    """mark_sweep adds the markers by axis name and the t line as two shapes, cheaper than add_trace(row=...) and
    add_vline(row="all") on a subplot grid (what sweep_chart did before): the same figure."""
    ts, mse, psnr = [0, 500, 999], [0.3, 0.1, 0.05], [12.0, 20.0, 30.0]
    base = pr.sweep_base(ts, mse, psnr)
    fig = pr.mark_sweep(base, 500, (0.1, 20.0))
    old = go.Figure(base)
    for row, value, colour, name in (
        (1, 0.1, pr.NOISE_COLOUR, "current ε-MSE"),
        (2, 20.0, pr.SIGNAL_COLOUR, "current PSNR"),
    ):
        marker = dict(size=11, color=colour, line=dict(color=pr.MARKER_COLOUR, width=1))
        old.add_trace(
            go.Scatter(x=[500], y=[value], mode="markers", showlegend=False, marker=marker, name=name), row=row, col=1
        )
    old.add_vline(x=500, line=dict(color=pr.MARKER_COLOUR, width=2, dash="dash"), row="all", col=1)
    assert fig.to_plotly_json() == old.to_plotly_json()
    assert len(base.data) == 2 and len(base.layout.shapes) == 0  # the base is left as it was


@pytest.mark.parametrize(
    "ts, mse, psnr",
    [
        ([0, 500, 999], [0.3, 0.1, 0.05], [12.0, 20.0, 30.0]),
        ([0, 25, 50, 75], [0.2, float("nan"), 0.1, 0.05], [10.0, float("inf"), 21.5, 33.0]),  # gaps
        ([7], [0.5], [9.0]),
    ],
)
def test_a_refilled_sweep_equals_one_built_and_validated_in_full(ts, mse, psnr):
    template = pr.sweep_base([0, 1], [1.0, 1.0], [1.0, 1.0])
    fig = pr.refill_sweep(template, ts, mse, psnr)
    assert fig.to_plotly_json() == pr.sweep_base(ts, mse, psnr).to_plotly_json()
    marked = pr.mark_sweep(fig, ts[-1], (mse[-1], psnr[-1]))  # and marking it gives the validated chart's marks
    full = pr.mark_sweep(pr.sweep_base(ts, mse, psnr), ts[-1], (mse[-1], psnr[-1]))
    assert marked.to_plotly_json() == full.to_plotly_json()
    assert list(template.data[0].x) == [0, 1]  # the template is left as it was


def test_the_psnr_chart_does_not_blow_a_small_wobble_up_into_an_arch():
    """Issue 26: a run whose x̂₀ PSNR moves by 0.2 dB was drawn by plotly's autorange as an arch filling the chart.
    The axis spans at least PSNR_MIN_SPAN_DB around the values; a real climb keeps its own range."""
    from app.charts import reverse

    steps = list(range(1, 21))
    wobble = [25.0 + 0.1 * math.sin(i / 3) for i in steps]
    lo, hi = reverse.psnr_chart(steps, wobble, steps).layout.yaxis.range
    assert hi - lo >= reverse.PSNR_MIN_SPAN_DB and lo < min(wobble) and hi > max(wobble)
    climb = [10.0 + i for i in steps]
    assert reverse.psnr_chart(steps, climb, steps).layout.yaxis.range is None  # autorange shows the climb
