"""Pure Plotly builders for the Particle lab and the Sampler race: plain arrays in, ``go.Figure`` out.

No Streamlit here; ``tests/unit/app/test_plots_particles.py`` builds the figures directly. Points and arrows are
(N, 2) arrays in the lab's coordinates (about [-1, 1]); paths are (S + 1, B, 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.plots import layout, log_axis, wrap_title

# Every colour shows on the light theme's white and on the dark theme's near-black (#0e1117) alike, at a contrast of
# 3:1 or more against both: black data points vanished on the dark one. tests/unit/app/test_plots_particles_theme.py
# checks every trace; tests/e2e/test_browser_particles_theme.py checks the charts as a browser draws them.
DATA = "#808080"  # the data x^(i): mid grey, 3.9:1 on white, 5.3:1 on the dark background
NOISY = "#2ca02c"
EXACT = "#1f77b4"
LEARNED = "#d62728"
ODE = "#1f77b4"
SDE = "#e6550d"
EXTENT = 1.6  # the square every particle chart shows: [-EXTENT, EXTENT]^2
QUALITY_FLOOR = 1e-4  # quality below this (an MMD² estimate can be <= 0) is drawn here: within the estimate's noise
SUBPLOT_TITLE_CHARS = 22  # a panel's title line fits half a phone's chart
TITLE_LINE_PX = 22
# Plotly's palette with its orange, pink and cyan darkened: the light ones faded into white at a path's opacity
PALETTE = ("#1f77b4", "#e6550d", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#c2549d", "#1a9fb0")


def _square(fig: go.Figure, height: int = 460) -> go.Figure:
    fig.update_xaxes(range=[-EXTENT, EXTENT], zeroline=False)
    fig.update_yaxes(range=[-EXTENT, EXTENT], zeroline=False, scaleanchor="x", scaleratio=1)
    fig.update_layout(height=height)
    return fig


def _segments(starts: np.ndarray, ends: np.ndarray) -> tuple[list, list]:
    """x and y lists of line segments start -> end separated by None (one trace draws them all)."""
    xs: list = []
    ys: list = []
    for (x0, y0), (x1, y1) in zip(starts.tolist(), ends.tolist(), strict=True):
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return xs, ys


def arrows(grid: np.ndarray, field: np.ndarray, length: float) -> np.ndarray:
    """Arrow tips: each grid point moved along its field vector, scaled so the longest arrow is ``length``."""
    norm = float(np.linalg.norm(field, axis=1).max()) if len(field) else 0.0
    return grid + field * (length / norm if norm > 0 else 0.0)


def points_trace(
    points: np.ndarray, name: str = "data x⁽ⁱ⁾", colour: str = DATA, size: int = 5, opacity: float | None = None
) -> go.Scatter:
    """Points as markers; the data x^(i) opaque (see-through grey lost contrast on white), others at 0.8."""
    opacity = (1.0 if colour == DATA else 0.8) if opacity is None else opacity
    return go.Scatter(
        x=points[:, 0], y=points[:, 1], mode="markers", name=name, marker=dict(size=size, color=colour, opacity=opacity)
    )


def field_figure(
    points: np.ndarray,
    grid: np.ndarray,
    field: np.ndarray,
    title: str,
    noisy: np.ndarray | None = None,
    learned: np.ndarray | None = None,
    length: float = 0.12,
) -> go.Figure:
    """The exact field (blue arrows from each grid point) over the data (black) and, optionally, the noised particles
    x_t (grey) and a learned field on the same grid (red arrows, scaled like the exact ones)."""
    fig = go.Figure()
    if noisy is not None:
        fig.add_trace(points_trace(noisy, "noised particles x_t", NOISY, 4))
    fig.add_trace(points_trace(points))
    tips = arrows(grid, field, length)
    xs, ys = _segments(grid, tips)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="exact field", line=dict(color=EXACT, width=1.5)))
    fig.add_trace(
        go.Scatter(x=tips[:, 0], y=tips[:, 1], mode="markers", showlegend=False, marker=dict(size=3, color=EXACT))
    )
    if learned is not None:
        norm = float(np.linalg.norm(field, axis=1).max()) or 1.0  # the same scale as the exact arrows
        ltips = grid + learned * (length / norm)
        xs, ys = _segments(grid, ltips)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="learned field", line=dict(color=LEARNED, width=1.5)))
    return _square(layout(fig, title, 480), 480)


def paths_figure(points: np.ndarray, groups: dict[str, np.ndarray], title: str, colours=None) -> go.Figure:
    """Particle paths, one colour per group (e.g. ``{"ODE (DDIM)": path, "SDE (DDPM)": path}``, each (S + 1, B, 2)),
    with each path's start (open circle) and end (filled dot) over the data."""
    colours = colours or {}
    fig = go.Figure([points_trace(points, size=4)])
    for i, (name, path) in enumerate(groups.items()):
        colour = colours.get(name, PALETTE[i % len(PALETTE)])
        xs: list = []
        ys: list = []
        for b in range(path.shape[1]):
            xs += path[:, b, 0].tolist() + [None]
            ys += path[:, b, 1].tolist() + [None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line=dict(color=colour, width=1), opacity=0.7))
        fig.add_trace(
            go.Scatter(
                x=path[-1, :, 0], y=path[-1, :, 1], mode="markers", showlegend=False, marker=dict(size=5, color=colour)
            )
        )
    start = next(iter(groups.values()))[0] if groups else np.zeros((0, 2))
    fig.add_trace(
        go.Scatter(
            x=start[:, 0], y=start[:, 1], mode="markers", name="start x_T (same seeds)",
            marker=dict(size=6, color="rgba(0,0,0,0)", line=dict(color=DATA, width=1.5)),
        )
    )  # fmt: skip
    fig.update_layout(xaxis_range=[-3, 3])
    fig = layout(fig, title, 480)
    fig.update_xaxes(range=[-3, 3], zeroline=False)
    fig.update_yaxes(range=[-3, 3], zeroline=False, scaleanchor="x", scaleratio=1)
    return fig


def loss_figure(losses: Sequence[float], total_steps: int) -> go.Figure:
    """The training loss per step (faint) and its running mean over 50 steps, log y, x up to ``total_steps``."""
    y = np.asarray(losses, dtype=float)
    steps = np.arange(1, len(y) + 1)
    fig = go.Figure(go.Scatter(x=steps, y=y, mode="lines", name="loss per step", line=dict(color=DATA, width=1)))
    if len(y) >= 2:
        k = min(50, len(y))
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        fig.add_trace(
            go.Scatter(x=steps[k - 1 :], y=smooth, mode="lines", name=f"mean of {k}", line=dict(color=EXACT, width=2))
        )
    fig.update_xaxes(title="optimiser step", range=[0, total_steps])
    fig.update_yaxes(title="loss", **log_axis(y))  # powers of ten only, in plain numbers (not "1, 9, 8, 7")
    return layout(fig, "Training loss", 320)


def samples_figure(points: np.ndarray, samples: np.ndarray, title: str) -> go.Figure:
    """Samples of the learned model (red) over the data (black)."""
    fig = go.Figure([points_trace(points, size=4), points_trace(samples, "samples", LEARNED, 4)])
    return _square(layout(fig, title, 420), 420)


def brush_figure(grid: np.ndarray) -> go.Figure:
    """The faint grid of dots a person lasso- or box-selects to add points: square, so a dot's place on screen is
    its place in the field charts (without ``constrain="domain"`` a wide column stretched x to about ±6 and squeezed
    the grid into a strip)."""
    fig = samples_figure(np.zeros((0, 2)), grid, "Brush: lasso or box-select grid dots to add them")
    fig.update_traces(marker=dict(size=4, color=DATA, opacity=0.7), selector=dict(name="samples"))
    fig.update_xaxes(constrain="domain")
    fig.update_yaxes(constrain="domain")
    fig.update_layout(dragmode="lasso")
    return fig


def race_figure(rows: Sequence[dict], quality_label: str) -> go.Figure:
    """Two panels against network evaluations (log x): quality (log y, lower is better) and path straightness
    (1 = a straight line), one line per scheduler. ``rows``: dicts with scheduler, evaluations, quality,
    straightness. Quality below :data:`QUALITY_FLOOR` is drawn at the floor (a log axis cannot show <= 0, and MMD²
    estimates of equal distributions scatter around 0)."""
    titles = (quality_label + " (lower is better)", "path straightness (1 = a straight line)")
    # short lines: on a phone's 400-px chart each panel is about 170 px wide, and one-line titles ran into each other
    titles = tuple(wrap_title(t, SUBPLOT_TITLE_CHARS)[0] for t in titles)
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.14)
    names = list(dict.fromkeys(r["scheduler"] for r in rows))
    for i, name in enumerate(names):
        mine = sorted((r for r in rows if r["scheduler"] == name), key=lambda r: r["evaluations"])
        nfe = [r["evaluations"] for r in mine]
        colour = PALETTE[i % len(PALETTE)]
        dash = "dash" if name.startswith("FlowMatch") else "solid"
        q = [max(float(r["quality"]), QUALITY_FLOOR) for r in mine]
        line = dict(color=colour, dash=dash)
        fig.add_trace(go.Scatter(x=nfe, y=q, mode="lines+markers", name=name, line=line, legendgroup=name), 1, 1)
        fig.add_trace(
            go.Scatter(
                x=nfe, y=[r["straightness"] for r in mine], mode="lines+markers", name=name, line=line,
                legendgroup=name, showlegend=False,
            ),
            1, 2,
        )  # fmt: skip
    fig.update_xaxes(title="network evaluations", **evaluation_axis([r["evaluations"] for r in rows]))
    qualities = [max(float(r["quality"]), QUALITY_FLOOR) for r in rows]
    fig.update_yaxes(**log_axis(qualities), row=1, col=1)  # powers of ten only, in plain numbers
    fig.update_yaxes(range=[0, 1.05], row=1, col=2)
    fig.update_annotations(font_size=13)
    fig = layout(fig, "The sampler race: quality and straightness against network evaluations", 420)
    # layout() leaves one line for the panels' titles: grow the top margin (and the chart, so the plot keeps its
    # height and the title its place) by the lines beyond it
    more = TITLE_LINE_PX * (max(t.count("<br>") for t in titles))
    total, middle = fig.layout.height, (1 - fig.layout.title.y) * fig.layout.height
    fig.update_layout(height=total + more, margin_t=fig.layout.margin.t + more, title_y=1 - middle / (total + more))
    return fig


def evaluation_axis(evaluations: Sequence[int]) -> dict:
    """A log x axis over ``evaluations`` labelled at powers of two only (4, 8, 16, 32, 64): Plotly's own log ticks
    ("5 2 5 10 2 5") were crammed together on a phone."""
    hi = max(list(evaluations) + [2])
    lo = min(list(evaluations) + [hi])
    ticks = [2**k for k in range(max(0, math.floor(math.log2(lo))), math.ceil(math.log2(hi)) + 1)]
    return dict(type="log", tickmode="array", tickvals=ticks, ticktext=[str(v) for v in ticks])
