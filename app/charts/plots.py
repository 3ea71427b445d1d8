"""Pure Plotly figure builders: plain data in, ``plotly.graph_objects.Figure`` out.

No Streamlit here; tests build the figures directly.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from model.diffusion.schedule import Schedule

SIGNAL_COLOUR = "#1f77b4"
NOISE_COLOUR = "#d62728"
# The current-t marker and reference lines: a mid grey that shows on the light and the dark theme alike
# (black vanished on the dark one).
MARKER_COLOUR = "#8c8c8c"
LEGEND_PX = 40  # room below the x axis for the legend
AXIS_PX = 64  # room below the plot for the x axis's tick labels and title (the legend goes below them)
TITLE_CHARS = 44  # a title line this long fits a phone's 400-px chart (Plotly never wraps a title itself)
TITLE_LINE_PX = 22  # the height of one title line, for the top margin
TOOLBAR_PX = 30  # the row at the top of a chart where Plotly's tool bar appears
TOP_PX = 62  # the top margin for a one-line title: the tool bar's row, the title and a gap above the plot


# The trace types the app draws: the house template keeps plotly_white's defaults for these only.
TRACE_TYPES = ("bar", "heatmap", "histogram", "scatter")


def house_template() -> go.layout.Template:
    """Plotly's "plotly_white" template cut to what these charts use: all of its layout, and its trace defaults
    for :data:`TRACE_TYPES` only (the full one has defaults for 24 trace types).

    A template is validated and copied into every figure that sets it. The full one was about a third of a
    chart's build time, which a classroom server pays on every slider step (bench/load.py, py-spy --gil); the
    charts look the same.
    """
    white = pio.templates["plotly_white"]
    return go.layout.Template(layout=white.layout, data={k: white.data[k] for k in TRACE_TYPES})


TEMPLATE = house_template()


def wrap_title(title: str, width: int = TITLE_CHARS) -> tuple[str, int]:
    """``title`` broken at spaces into lines of at most ``width`` characters (joined by ``<br>``), and the
    number of lines. A longer title ran past the right edge of a phone's chart, where it was cut off."""
    lines = textwrap.wrap(title, width=width, break_long_words=False, break_on_hyphens=False) or [""]
    return "<br>".join(lines), len(lines)


def layout(fig: go.Figure, title: str, height: int = 320, axis_px: int = AXIS_PX) -> go.Figure:
    """The house style every chart shares: title on top, legend below the x axis, compact margins, white template.

    The legend sits below the chart (not beside the title), and a long title is broken into short lines
    (:func:`wrap_title`) with the top margin grown to hold them, so on a phone's narrow chart the title stays
    inside the chart and above the plot, and never meets the legend. ``axis_px``: the room between the plot and
    the legend for the x axis's tick labels and title (more for slanted labels); the plot keeps its height.
    """
    text, lines = wrap_title(title)
    extra = TITLE_LINE_PX * (lines - 1)
    if any(a.yref == "paper" and (a.y or 0) >= 1 for a in fig.layout.annotations):  # subplot titles above the plot
        extra += TITLE_LINE_PX
    plot_px = height - 90  # the plot area's height: what ``height`` has always left it, whatever the margins
    total = TOP_PX + extra + plot_px + axis_px + LEGEND_PX
    # The title block sits in the top margin, below the row of Plotly's tool bar (top right) and above the
    # plot. Plotly centres a block of <br> lines on its anchor, so the block's middle is placed, in px.
    middle = TOOLBAR_PX + TITLE_LINE_PX * lines / 2
    fig.update_layout(
        title=dict(text=text, yref="container", y=1 - middle / total, yanchor="middle"),
        height=total,
        margin=dict(l=40, r=20, t=TOP_PX + extra, b=axis_px + LEGEND_PX),
        legend=dict(orientation="h", yanchor="top", y=-(axis_px - 3) / plot_px, xanchor="left", x=0.0),
        template=TEMPLATE,
    )
    return fig


def schedule_base(schedule: Schedule) -> go.Figure:
    """The schedule's two weights against t, styled, without the current t (see :func:`mark_schedule`)."""
    ts = np.arange(schedule.T)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ts, y=schedule.sqrt_alpha_bar.numpy(), name="√ᾱ_t  (signal weight)", line=dict(color=SIGNAL_COLOUR)
        )
    )
    fig.add_trace(
        go.Scatter(
            x=ts,
            y=schedule.sqrt_one_minus_alpha_bar.numpy(),
            name="√(1−ᾱ_t)  (noise weight)",
            line=dict(color=NOISE_COLOUR),
        )
    )
    fig.update_xaxes(title="timestep t", range=[0, schedule.T - 1])
    fig.update_yaxes(title="weight", range=[0, 1.02])
    return layout(fig, f"{schedule.name} schedule: x₀ and ε in x_t")


def t_line(t: float, xref: str = "x", yref: str = "y domain") -> dict:
    """The dashed vertical line at the current t over a whole plot: what ``fig.add_vline(x=t)`` adds, as a shape."""
    line = dict(color=MARKER_COLOUR, width=2, dash="dash")
    return dict(type="line", x0=t, x1=t, xref=xref, y0=0, y1=1, yref=yref, line=line)


def copy_figure(fig: go.Figure) -> go.Figure:
    """A copy of ``fig`` to add to, without validating again what was validated when ``fig`` was built.

    ``go.Figure(fig)`` validates every property of the copy again, the template's included: most of the cost of
    marking t on a cached chart (about 3x the rest). Plotly loads its own templates the same way
    (``Template(..., _validate=False)``). Traces added to the copy are validated when they are constructed;
    tests compare every marked chart with one built and validated in full.
    """
    data = [trace.to_plotly_json() for trace in fig.data]  # deep copies; arrays stay arrays
    return go.Figure(data=data, layout=fig.layout.to_plotly_json(), _validate=False)


def mark_schedule(base: go.Figure, schedule: Schedule, t: int) -> go.Figure:
    """A copy of :func:`schedule_base`'s figure with t marked: a dashed line and the two weights at t.

    A copy and two additions are a fraction of a whole build, so a server can keep the base and mark each t.
    """
    sig, noi = schedule.sqrt_alpha_bar.numpy()[t], schedule.sqrt_one_minus_alpha_bar.numpy()[t]
    fig = copy_figure(base)
    fig.add_shape(t_line(t))
    fig.add_trace(
        go.Scatter(
            x=[t, t],
            y=[sig, noi],
            mode="markers",
            marker=dict(size=10, color=[SIGNAL_COLOUR, NOISE_COLOUR]),
            name=f"t = {t}",
            showlegend=False,
        )
    )
    return fig


def schedule_chart(schedule: Schedule, t: int) -> go.Figure:
    """sqrt(alpha_bar_t) (signal weight) and sqrt(1 - alpha_bar_t) (noise weight) against t, t marked."""
    return mark_schedule(schedule_base(schedule), schedule, t)


def histogram_chart(
    samples: dict[str, np.ndarray],
    bins: int = 60,
    normal: bool = True,
    title: str = "Pixel values of x_t: step by step vs one jump",
    x_title: str = "pixel value",
) -> go.Figure:
    """Overlaid histograms (as densities), optionally with the N(0, 1) density on top."""
    fig = go.Figure()
    lo = min(float(np.min(v)) for v in samples.values())
    hi = max(float(np.max(v)) for v in samples.values())
    lo, hi = min(lo, -4.0), max(hi, 4.0)
    for name, values in samples.items():
        fig.add_trace(
            go.Histogram(
                x=np.asarray(values).ravel(),
                name=name,
                histnorm="probability density",
                xbins=dict(start=lo, end=hi, size=(hi - lo) / bins),
                opacity=0.55,
            )
        )
    if normal:
        xs = np.linspace(lo, hi, 300)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=np.exp(-(xs**2) / 2) / math.sqrt(2 * math.pi),
                name="N(0, 1)",
                line=dict(color=MARKER_COLOUR, width=2),
            )
        )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title="density")
    return layout(fig, title)


def line_chart(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    title: str,
    x_title: str,
    y_title: str,
    marker_x: float | None = None,
    log_y: bool = False,
) -> go.Figure:
    """A generic multi-series line chart with an optional vertical marker (the current t or step)."""
    fig = go.Figure()
    for name, ys in series.items():
        fig.add_trace(go.Scatter(x=list(x), y=list(ys), name=name, mode="lines+markers", marker=dict(size=4)))
    if marker_x is not None:
        fig.add_vline(x=marker_x, line=dict(color=MARKER_COLOUR, width=2, dash="dash"))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title, **(log_axis([v for ys in series.values() for v in ys]) if log_y else {}))
    return layout(fig, title)


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
PLAIN_EXPONENTS = range(-4, 6)  # 0.0001 … 100000 are written out; further out, 10⁻⁶ (a row of zeros is miscounted)


def power_label(exponent: int) -> str:
    """10**exponent as a student reads it: 0.01, 0.1, 1, 10, 100 (10⁻⁶ beyond :data:`PLAIN_EXPONENTS`)."""
    if exponent in PLAIN_EXPONENTS:
        return f"{10.0**exponent:.{max(0, -exponent)}f}"
    return "10" + str(exponent).translate(SUPERSCRIPT)


def log_axis(values: Sequence[float] | np.ndarray, max_labels: int = 6) -> dict:
    """The settings of a log axis that shows ``values`` and labels powers of ten only, in plain numbers.

    Plotly's own log ticks read "2, 5, 0.1, 2, 5" (minor labels between the powers), "8 9 10 2 3" (where 2 and 3
    mean 20 and 30) or "100µ, 1µ" (SI prefixes): easy to misread in front of a class. Here every label is a power
    of ten written out (:func:`power_label`); the range runs from the power of ten below the smallest positive
    value to the one above the largest (so at least two labels show, one at each end), and over many decades
    every second or third power is labelled, at most about ``max_labels``. Zeros, negatives and NaNs are left out (a log axis cannot
    show them). Pass the result to ``fig.update_yaxes(**log_axis(ys))``; it holds plain numbers and strings only,
    so it can also go into a figure's JSON unvalidated.
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return dict(type="log")
    lo = math.floor(math.log10(v.min()) + 1e-9)
    hi = max(math.ceil(math.log10(v.max()) - 1e-9), lo + 1)
    step = math.ceil((hi - lo + 1) / max_labels)
    lo, hi = step * math.floor(lo / step), step * math.ceil(hi / step)  # both ends labelled
    exponents = list(range(lo, hi + 1, step))
    pad = 0.02 * (hi - lo)  # markers on the first or last power stay whole
    return dict(
        type="log",
        range=[lo - pad, hi + pad],  # a log axis's range is in log10 units
        tickmode="array",
        tickvals=[10.0**e for e in exponents],
        ticktext=[power_label(e) for e in exponents],
    )
