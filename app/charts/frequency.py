"""Pure Plotly builder for the frequency view (issue 27): a :class:`model.images.spectrum.SpectrumAtT` in,
``go.Figure`` out.

No Streamlit here; ``tests/unit/app/test_plots_frequency.py`` builds the figures directly.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from app.charts.plots import MARKER_COLOUR, NOISE_COLOUR, SIGNAL_COLOUR
from app.charts.plots import layout as _layout
from model.images.spectrum import SpectrumAtT

MEASURED_COLOUR = "#9467bd"  # the spectrum of the image looked at (x_t or x0_hat)
BAND_OPACITY = 0.12
Y_MARGIN = 3.0  # the y axis reaches this factor beyond the lowest and highest power it must show


def y_range(power0: np.ndarray, lowest_floor: float) -> tuple[float, float]:
    """A y range (powers, not logs) that holds the photo's spectrum and every noise floor from ``lowest_floor``
    (1 - alpha_bar at the first step) up to 1: the same for every t, so the axis stays still while the slider
    moves and only the curves do."""
    positive = np.asarray(power0)[np.asarray(power0) > 0]
    lo = min(float(positive.min()) if positive.size else 1.0, lowest_floor)
    hi = max(float(np.max(power0, initial=0.0)), 1.0)
    return lo / Y_MARGIN, hi * Y_MARGIN


def _band(view: SpectrumAtT, x_hi: float) -> dict | None:
    """The drowned band, every bin above f_max, as a shape over the plot's height (None when nothing drowns)."""
    if view.f_max >= view.radius[-1]:
        return None
    x0 = view.f_max + 0.5 if view.f_max > 0 else 0.0  # shapes take data values on a log axis; 0 is the left edge
    return dict(
        type="rect",
        x0=max(x0, float(view.radius[0]) / 1.2),
        x1=x_hi,
        xref="x",
        y0=0,
        y1=1,
        yref="y domain",
        fillcolor=NOISE_COLOUR,
        opacity=BAND_OPACITY,
        line=dict(width=0),
        layer="below",
    )


def spectrum_chart(
    view: SpectrumAtT,
    title: str,
    reference_name: str = "x₀: the photo, R₀",
    measured_name: str = "x_t, measured",
    y_limits: tuple[float, float] | None = None,
) -> go.Figure:
    """The radially averaged power spectrum on log-log axes, at one t.

    Traces: the reference spectrum R₀ (the photo); its share in x_t, ᾱ_t·R₀ (dotted); the noise floor 1 − ᾱ_t (a
    flat dashed line); the measured spectrum of the image looked at (``view.measured``, when given); and f_max(t), the
    highest frequency where ᾱ_t·R₀ still reaches the floor, as a marker on the floor with a dashed line. The band
    above f_max, where the noise holds more power than the photo, is shaded. ``y_limits``: powers (not logs), e.g.
    from :func:`y_range`, so that the axis stays still across t; None lets Plotly choose.
    """
    r = view.radius.astype(float)
    x_lo, x_hi = float(r[0]) / 1.2, float(r[-1]) * 1.2
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=r, y=view.power0, name=reference_name, line=dict(color=SIGNAL_COLOUR, width=2)))
    fig.add_trace(
        go.Scatter(x=r, y=view.signal, name="its share in x_t: ᾱ_t·R₀", line=dict(color=SIGNAL_COLOUR, dash="dot"))
    )
    fig.add_trace(
        go.Scatter(
            x=[x_lo, x_hi],
            y=[view.floor, view.floor],
            mode="lines",
            name=f"noise floor 1 − ᾱ_t = {view.floor:.3g}",
            line=dict(color=NOISE_COLOUR, dash="dash", width=2),
        )
    )
    if view.measured is not None:
        fig.add_trace(
            go.Scatter(
                x=r,
                y=np.where(view.measured > 0, view.measured, np.nan),  # log axis: a zero bin is a gap
                name=measured_name,
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color=MEASURED_COLOUR),
            )
        )
    if view.f_max > 0:
        fig.add_shape(
            type="line", x0=view.f_max, x1=view.f_max, xref="x", y0=0, y1=1, yref="y domain",
            line=dict(color=MARKER_COLOUR, width=2, dash="dash"),
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=[view.f_max],
                y=[view.floor],
                mode="markers",
                marker=dict(size=11, color=MARKER_COLOUR, symbol="diamond"),
                name=f"f_max(t) = {view.f_max} cycles/image",
            )
        )
    band = _band(view, x_hi)
    if band is not None:
        fig.add_shape(**band)
    fig.update_xaxes(
        title="spatial frequency (cycles per image; right = finer detail)",
        type="log",
        range=[math.log10(x_lo), math.log10(x_hi)],  # an axis range on a log axis is in log10 units
        tickvals=[2**k for k in range(int(math.log2(r[-1])) + 1)],  # 1, 2, 4, ... cycles: each an octave finer
    )
    fig.update_yaxes(title="power (log)", type="log", exponentformat="power")
    if y_limits is not None:
        fig.update_yaxes(range=[math.log10(y_limits[0]), math.log10(y_limits[1])])
    return _layout(fig, title, height=400)
