"""The frequency view's pure Plotly builder (app/charts/frequency.py), without Streamlit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.charts import frequency as plots_frequency
from model.diffusion.schedule import make_schedule
from model.images import spectrum

SCHEDULE = make_schedule("linear")


def _view(t: int, measured: bool = True) -> spectrum.SpectrumAtT:
    radius = np.arange(1, 33)
    power0 = 50.0 * radius.astype(float) ** -2.0  # a 1/f^2 "photo" of 64 px
    return spectrum.spectrum_at(SCHEDULE, t, radius, power0, power0 * 0.5 + 0.1 if measured else None)


def _trace(fig, start: str):
    found = [tr for tr in fig.data if tr.name.startswith(start)]
    assert len(found) == 1, [tr.name for tr in fig.data]
    return found[0]


def test_the_chart_is_log_log_with_the_photo_floor_measured_and_f_max():
    view = _view(250)
    assert 0 < view.f_max < 32
    fig = plots_frequency.spectrum_chart(view, "t = 250")
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    np.testing.assert_allclose(_trace(fig, "x₀: the photo").y, view.power0)
    np.testing.assert_allclose(_trace(fig, "its share in x_t").y, view.alpha_bar * view.power0)
    floor = _trace(fig, "noise floor")
    assert list(floor.y) == pytest.approx([1 - float(SCHEDULE.alpha_bar[250])] * 2)
    np.testing.assert_allclose(_trace(fig, "x_t, measured").y, view.measured)
    marker = _trace(fig, "f_max(t)")
    assert list(marker.x) == [view.f_max] and marker.name == f"f_max(t) = {view.f_max} cycles/image"
    # the drowned band starts just above f_max and runs to the right edge; a dashed line marks f_max
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(rects) == 1 and rects[0].x0 == view.f_max + 0.5 and rects[0].x1 >= 32
    assert len(lines) == 1 and lines[0].x0 == lines[0].x1 == view.f_max


def _band_start(view: spectrum.SpectrumAtT) -> float:
    (rect,) = [s for s in plots_frequency.spectrum_chart(view, "").layout.shapes if s.type == "rect"]
    return rect.x0


def test_the_band_and_marker_follow_t():
    early, late = _view(150), _view(600)
    assert 32 > early.f_max > late.f_max > 0
    assert _band_start(early) > _band_start(late)  # a higher floor drowns more: the band reaches further left


def test_nothing_drowned_has_no_band_and_everything_drowned_has_no_f_max():
    radius = np.arange(1, 33)
    loud = spectrum.spectrum_at(SCHEDULE, 0, radius, np.full(32, 1e3))
    fig = plots_frequency.spectrum_chart(loud, "")
    assert loud.f_max == 32 and not [s for s in fig.layout.shapes if s.type == "rect"]
    quiet = spectrum.spectrum_at(SCHEDULE, 999, radius, np.full(32, 1e-3))
    fig = plots_frequency.spectrum_chart(quiet, "")
    assert quiet.f_max == 0 and not [tr for tr in fig.data if tr.name.startswith("f_max")]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 1 and rects[0].x0 <= 1  # the whole axis is shaded
    assert len([tr for tr in fig.data if tr.name.startswith("x_t")]) == 0  # no measured spectrum given


def test_zero_power_bins_are_gaps_on_the_log_axis():
    view = _view(100)
    measured = view.measured.copy()
    measured[5] = 0.0
    fig = plots_frequency.spectrum_chart(spectrum.spectrum_at(SCHEDULE, 100, view.radius, view.power0, measured), "")
    assert math.isnan(_trace(fig, "x_t").y[5])


def test_y_range_is_the_same_for_every_t_and_holds_the_photo_and_every_floor():
    power0 = _view(0).power0
    lowest = float(spectrum.noise_floor(SCHEDULE, 0))
    lo, hi = plots_frequency.y_range(power0, lowest)
    assert lo < min(power0.min(), lowest) and hi > max(power0.max(), 1.0)
    fig = plots_frequency.spectrum_chart(_view(300), "", y_limits=(lo, hi))
    assert tuple(fig.layout.yaxis.range) == pytest.approx((math.log10(lo), math.log10(hi)))
    assert plots_frequency.y_range(np.zeros(4), lowest)[1] == pytest.approx(plots_frequency.Y_MARGIN)  # flat: no crash
