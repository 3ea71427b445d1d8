"""Pure Plotly builders for "Questions students ask": plain arrays and results in, ``go.Figure`` out (no Streamlit;
``tests/unit/app/test_page_questions.py`` builds them directly too)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.plots import layout, log_axis

EXACT = "#1f77b4"
NETWORK = "#d62728"
CHANCE = "#9e9e9e"
DATA = "#111111"
CLASS_COLOURS = ("#1f77b4", "#ff7f0e")
EXTENT = 1.1  # the guidance panels show [-EXTENT, EXTENT]^2 (the mixture lies within about 0.8)


def copy_distance_figure(test_distances: np.ndarray, distance: Mapping[str, float], threshold: float) -> go.Figure:
    """How far each final picture lies from its nearest training image, against real test images' distances."""
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=test_distances, name="real test images", marker_color=CHANCE, opacity=0.7, nbinsx=40))
    colours = {"exact denoiser": EXACT, "Fashion network": NETWORK}
    for name, d in distance.items():
        fig.add_vline(x=d, line=dict(color=colours.get(name, DATA), width=3))
        fig.add_trace(go.Scatter(x=[d], y=[0], mode="markers", name=f"{name}: {d:.2f}",
                                 marker=dict(color=colours.get(name, DATA), size=12, symbol="diamond")))  # fmt: skip
    fig.add_vline(x=threshold, line=dict(color=DATA, dash="dash"))
    fig.add_annotation(x=threshold, y=1, yref="paper", text="near-copy below", showarrow=False, xanchor="right")
    fig.update_xaxes(title="distance to the nearest training image", rangemode="tozero")
    fig.update_yaxes(title="test images")
    return layout(fig, "Distance to the nearest of 5,000 training images", height=340)


def particles_copy_figure(samples: Mapping[str, np.ndarray], n: int) -> go.Figure:
    """The n training points and where each denoiser's samples landed."""
    fig = go.Figure()
    # the exact denoiser's samples sit on the points: open rings, drawn large, so they show around the crosses
    styles = {"exact": ("exact denoiser", EXACT, "circle-open", 13), "network": ("small network", NETWORK, "circle", 5)}
    for key, (name, colour, symbol, size) in styles.items():
        if key in samples:
            s = samples[key]
            fig.add_trace(go.Scatter(x=s[:, 0], y=s[:, 1], mode="markers", name=name,
                                     marker=dict(size=size, color=colour, opacity=0.45, symbol=symbol)))  # fmt: skip
    p = samples["points"]
    fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=f"{n} training points",
                             marker=dict(size=9, color=DATA, symbol="x")))  # fmt: skip
    fig.update_xaxes(range=[-1.6, 1.6], zeroline=False)
    fig.update_yaxes(range=[-1.6, 1.6], zeroline=False, scaleanchor="x", scaleratio=1)
    return layout(fig, f"Samples from the same noise, trained on {n} points", height=440)


def copy_curve_figure(points: Sequence) -> go.Figure:
    """Near-copy share against the training-set size: exact denoiser, small network, chance (``CopyPoint`` list)."""
    pts = sorted(points, key=lambda p: p.n)
    ns = [p.n for p in pts]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ns, y=[p.exact for p in pts], mode="lines+markers", name="exact denoiser",
                             line=dict(color=EXACT)))  # fmt: skip
    trained = [p for p in pts if p.network is not None]
    if trained:
        fig.add_trace(go.Scatter(x=[p.n for p in trained], y=[p.network for p in trained], mode="lines+markers",
                                 name="small network", line=dict(color=NETWORK)))  # fmt: skip
    fig.add_trace(go.Scatter(x=ns, y=[p.chance for p in pts], mode="lines+markers", name="fresh data (chance)",
                             line=dict(color=CHANCE, dash="dot")))  # fmt: skip
    fig.update_xaxes(title="training points n", type="log")
    fig.update_yaxes(title="share of near-copies", range=[0, 1.05], tickformat=".0%")
    return layout(fig, "Near-copies as the training set grows", height=340)


def guidance_figure(result) -> go.Figure:
    """One panel per method: the true tilted target's density (shaded) and the method's samples on top."""
    names = list(result.samples)
    cols = 3
    rows = (len(names) + cols - 1) // cols
    titles = [
        f"{k}<br>MMD² to target {result.to_target[k]:.3f}" if k != "target" else "true tilted target" for k in names
    ]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.1)
    axis = result.grid.axis.numpy()
    dens = result.grid.density.numpy()
    colour = CLASS_COLOURS[result.settings.c]
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(
            go.Contour(x=axis, y=axis, z=dens, showscale=False, hoverinfo="skip", ncontours=6, showlegend=False,
                       contours=dict(coloring="lines"), line=dict(width=1.2), colorscale=[[0, "#bbbbbb"], [1, "#222222"]]),
            row=r, col=c,
        )  # fmt: skip
        s = result.samples[name].numpy()
        fig.add_trace(
            go.Scatter(x=s[:, 0], y=s[:, 1], mode="markers", marker=dict(size=3, color=colour, opacity=0.6),
                       name=name, showlegend=False),
            row=r, col=c,
        )  # fmt: skip
    fig.update_xaxes(range=[-EXTENT, EXTENT], showticklabels=False, zeroline=False)
    fig.update_yaxes(range=[-EXTENT, EXTENT], showticklabels=False, zeroline=False)
    for i in range(len(names)):
        fig.layout[f"yaxis{'' if i == 0 else i + 1}"].update(scaleanchor=f"x{'' if i == 0 else i + 1}")
    gamma = result.settings.gamma
    return layout(fig, f"What each method samples at γ = {gamma:g} (grey lines: the true tilted target)", height=640)


def guidance_bars(result) -> go.Figure:
    """Each method's MMD² to the true tilted target and to the plain class (drift), side by side."""
    names = [k for k in result.samples if k != "target"]
    floor = 1e-4  # an MMD² estimate can dip below 0: drawn at this floor
    fig = go.Figure()
    fig.add_trace(go.Bar(x=names, y=[max(result.to_target[k], floor) for k in names], name="to the tilted target",
                         marker_color="#555555"))  # fmt: skip
    fig.add_trace(go.Bar(x=names, y=[max(result.to_class[k], floor) for k in names], name="to the plain class",
                         marker_color=CLASS_COLOURS[result.settings.c]))  # fmt: skip
    values = [max(v, floor) for d in (result.to_target, result.to_class) for k, v in d.items() if k in names]
    fig.update_yaxes(title="MMD² (lower: closer)", **log_axis(values))
    return layout(fig, "How far each method's samples are from the target, and from the class", height=340)


def sdedit_figure(rows: Sequence[Mapping], marked: int | None = None) -> go.Figure:
    """PSNR of the edited photo to the original against the start t (``t_start_sweep``'s rows); ``marked``: the t
    shown above the chart."""
    fig = go.Figure(
        go.Scatter(x=[r["t_start"] for r in rows], y=[r["psnr"] for r in rows], mode="lines+markers",
                   name="PSNR to the original", line=dict(color=EXACT))
    )  # fmt: skip
    if marked is not None:
        fig.add_vline(x=marked, line=dict(color=DATA, dash="dot"))
    fig.update_xaxes(title="noised to t, then denoised back")
    fig.update_yaxes(title="PSNR (dB)")
    return layout(fig, "How much of the photo survives", height=320)
