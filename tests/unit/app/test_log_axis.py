"""Log axes label powers of ten only, in plain numbers (issue 36 item 3): Plotly's own ticks read "2, 5, 0.1, 2",
"8 9 10 2 3" (2 and 3 meaning 20 and 30) or "100µ, 1µ"."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.charts import objective as po
from app.charts import reverse as pr
from app.charts.plots import line_chart, log_axis, power_label


def _is_power_of_ten(v: float) -> bool:
    return abs(math.log10(v) - round(math.log10(v))) < 1e-9


def _check(axis) -> list[str]:
    """A figure's log axis: explicit ticks, each a power of ten, labelled in plain digits, the range ends labelled."""
    assert axis.type == "log" and axis.tickmode == "array"
    assert all(_is_power_of_ten(v) for v in axis.tickvals)
    text = list(axis.ticktext)
    assert not any(c in "".join(text) for c in "µmkMe")  # no SI prefixes, no 1e-4
    assert axis.range[0] <= math.log10(axis.tickvals[0]) and math.log10(axis.tickvals[-1]) <= axis.range[1]
    return text


def test_power_labels_are_plain_numbers():
    assert [power_label(e) for e in range(-3, 4)] == ["0.001", "0.01", "0.1", "1", "10", "100", "1000"]
    assert power_label(-6) == "10⁻⁶" and power_label(7) == "10⁷"  # a row of six zeros is miscounted


@pytest.mark.parametrize(
    ("values", "labels"),
    [
        ([0.013, 0.9], ["0.01", "0.1", "1"]),
        ([8, 9, 30], ["1", "10", "100"]),  # less than a decade still gets two labels, no "2 3" for 20 and 30
        ([3e-4, 0.2, 0.0, -1.0, float("nan")], ["0.0001", "0.001", "0.01", "0.1", "1"]),  # <= 0 and NaN left out
        ([1e-12, 2.0], ["10⁻¹²", "10⁻⁹", "10⁻⁶", "0.001", "1", "1000"]),  # many decades: every third power
    ],
)
def test_log_axis_labels_powers_of_ten_only(values, labels):
    axis = log_axis(values)
    assert axis["ticktext"] == labels
    lo, hi = axis["range"]
    positive = [v for v in values if v > 0]
    assert lo <= math.log10(min(positive)) and math.log10(max(positive)) <= hi  # every value is on the chart


def test_log_axis_without_positive_values_is_a_plain_log_axis():
    assert log_axis([0.0, -2.0]) == {"type": "log"}


def test_the_objective_pages_log_axes():
    ts = [1, 10, 100, 999]
    mse = po.eps_mse_chart(ts, [0.5, 0.2, 0.05, 0.01], [0.1, 0.05, 0.01, 0.0], n_draws=3, T=1000)
    assert _check(mse.layout.yaxis) == ["0.01", "0.1", "1"]
    terms = po.bound_terms_chart([0, 1, 500, 999], [3.0, 2e-6, 1e-4, 5e-3], exact=False, T=1000)
    assert _check(terms.layout.yaxis) == ["10⁻⁶", "0.0001", "0.01", "1", "100"]  # not "100µ, 1µ"
    vlb = np.linspace(0.01, 50.0, 1000)
    weights = po.weights_chart(vlb / vlb.mean(), np.ones(1000))
    _check(weights.layout.yaxis)


def test_the_reverse_sweeps_log_axis_follows_a_refill():
    ts = [0, 500, 999]
    fig = pr.sweep_base(ts, [0.5, 0.05, 0.01], [30.0, 20.0, 10.0])
    assert _check(fig.layout.yaxis) == ["0.01", "0.1", "1"]
    refilled = pr.refill_sweep(fig, ts, [2e-4, 1e-3, 3e-3], [30.0, 20.0, 10.0])
    assert _check(refilled.layout.yaxis) == ["0.0001", "0.001", "0.01"]


def test_line_chart_log_y():
    fig = line_chart([1, 2, 3], {"a": [0.02, 0.3, 4.0]}, "t", "x", "y", log_y=True)
    assert _check(fig.layout.yaxis) == ["0.01", "0.1", "1", "10"]
