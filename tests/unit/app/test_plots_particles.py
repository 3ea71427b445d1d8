"""The particle plot builders, without Streamlit."""

from __future__ import annotations

import numpy as np

from app.charts import particles as pp


def test_field_figure_scales_learned_arrows_like_the_exact_ones():
    grid = np.array([[0.0, 0.0], [1.0, 0.0]])
    field = np.array([[2.0, 0.0], [1.0, 0.0]])
    fig = pp.field_figure(np.zeros((1, 2)), grid, field, "t", learned=field / 2, length=0.1)
    exact = next(t for t in fig.data if t.name == "exact field")
    learned = next(t for t in fig.data if t.name == "learned field")
    assert exact.x[:2] == (0.0, 0.1)  # the longest exact arrow is `length`
    assert learned.x[:2] == (0.0, 0.05)  # half the field, half the arrow


def test_paths_figure_draws_one_line_trace_per_group_with_breaks():
    path = np.zeros((3, 2, 2))
    path[:, 1] = 1.0
    fig = pp.paths_figure(np.zeros((1, 2)), {"ODE": path, "SDE": path}, "p")
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["ODE", "SDE"]
    assert list(lines[0].x).count(None) == 2  # one break after each of the 2 particles


def test_race_figure_has_a_line_per_scheduler_in_both_panels():
    rows = [
        {"scheduler": "Heun", "evaluations": 7, "quality": 0.1, "straightness": 0.9},
        {"scheduler": "Heun", "evaluations": 15, "quality": 0.0, "straightness": 0.95},
        {"scheduler": "Euler", "evaluations": 4, "quality": 0.2, "straightness": 0.8},
    ]
    fig = pp.race_figure(rows, "MMD²")
    assert len(fig.data) == 4
    assert fig.data[0].y == (0.1, pp.QUALITY_FLOOR)  # a zero is drawn at the floor of the log axis
    assert fig.layout.xaxis.type == "log"


def test_loss_figure_has_the_raw_and_the_smoothed_curve():
    fig = pp.loss_figure([1.0, 0.5, 0.25], 10)
    assert [t.name for t in fig.data] == ["loss per step", "mean of 3"]


def test_the_brush_grid_is_square_and_selectable():
    from model.particles import data

    grid = data.brush_grid().numpy()
    fig = pp.brush_figure(grid)
    assert fig.layout.xaxis.constrain == "domain" and fig.layout.yaxis.scaleanchor == "x"
    assert list(fig.layout.xaxis.range) == list(fig.layout.yaxis.range)  # no wide column stretches x
    assert fig.layout.dragmode == "lasso"
    (dots,) = [tr for tr in fig.data if len(tr.x)]
    assert len(dots.x) == len(grid) and dots.marker.color == pp.DATA and dots.marker.opacity < 1  # faint


def test_log_axes_label_powers_of_ten_only_in_plain_numbers():
    """Issue 36, item 3: the race's MMD² axis read "2, 0.1, 5, 2, 0.01, 5" and the loss axis "1, 9, 8, 7"."""
    rows = [
        {"scheduler": "Euler", "evaluations": e, "quality": q, "straightness": 0.8}
        for e, q in [(4, 0.16), (8, 0.046), (16, 0.0046), (32, 0.0009)]
    ]
    race = pp.race_figure(rows, "MMD² to the data")
    loss = pp.loss_figure(list(np.linspace(1.2, 0.6, 300)), 300)
    for axis in (race.layout.yaxis, loss.layout.yaxis):
        assert axis.type == "log" and axis.tickmode == "array"
        assert all(np.log10(v) == round(np.log10(v)) for v in axis.tickvals)
        assert all(float(t) == v for t, v in zip(axis.ticktext, axis.tickvals, strict=True))  # "0.01", not "10m"
    # the evaluations axis: the step counts' powers of two, not Plotly's crammed "5 2 5 10 2 5"
    assert list(race.layout.xaxis.ticktext) == ["4", "8", "16", "32"]
