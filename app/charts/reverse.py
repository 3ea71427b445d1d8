"""Pure Plotly builders for the reverse-process pages: plain lists in, ``go.Figure`` out.

No Streamlit here; ``tests/unit/app/test_plots_reverse.py`` builds the figures directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.plots import MARKER_COLOUR, NOISE_COLOUR, SIGNAL_COLOUR, copy_figure, log_axis, t_line
from app.charts.plots import layout as _layout

PSNR_MIN_SPAN_DB = 10.0  # dB: a difference a viewer can see in the pictures spans a visible part of the chart


def _finite(values: Sequence[float]) -> list[float | None]:
    """inf / nan become gaps (Plotly draws None as a break), e.g. PSNR of a perfect estimate."""
    return [v if v is not None and math.isfinite(v) else None for v in values]


def sweep_base(ts: Sequence[int], mse: Sequence[float], psnr: Sequence[float]) -> go.Figure:
    """eps-MSE (top panel, log y) and x0_hat PSNR (bottom panel) against the same t axis, without the current t
    (:func:`mark_sweep` adds it).

    Two stacked panels rather than two y-axes on one plot: each curve has its own axis right beside it, and the
    log axis labels powers of ten only, in plain numbers (:func:`app.charts.plots.log_axis`), not "100µ".
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for row, values, name, colour in (
        (1, mse, "ε-MSE: mean (ε̂ − ε)²", NOISE_COLOUR),
        (2, psnr, "PSNR(x̂₀, x₀) in dB", SIGNAL_COLOUR),
    ):
        fig.add_trace(
            go.Scatter(
                x=list(ts),
                y=_finite(values),
                name=name,
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color=colour),
            ),
            row=row,
            col=1,
        )
    fig.update_xaxes(range=[0, max(ts) if len(ts) else 1])
    fig.update_xaxes(title="timestep t  (0 = first noising step)", row=2, col=1)
    fig.update_yaxes(title=dict(text="ε-MSE (log)", font=dict(color=NOISE_COLOUR)), **log_axis(mse), row=1, col=1)
    fig.update_yaxes(title=dict(text="PSNR (dB)", font=dict(color=SIGNAL_COLOUR)), row=2, col=1)
    return _layout(fig, "How good is one step, across t?", height=460)


def refill_sweep(template: go.Figure, ts: Sequence[int], mse: Sequence[float], psnr: Sequence[float]) -> go.Figure:
    """:func:`sweep_base` of these values, made from ``template`` (any :func:`sweep_base` figure) without validating
    again: its two traces get the new x and y, and the shared t axis the new range.

    Building the chart with validation costs about 18 ms of Python per sweep (it holds the GIL), paid once per
    student photo, and a classroom's photos all arrive in the first minute; this costs a copy. Only plain
    numbers are put in, and tests compare the result with :func:`sweep_base` built and validated in full.
    """
    fig = template.to_plotly_json()
    data = [dict(trace, x=list(ts), y=_finite(values)) for trace, values in zip(fig["data"], (mse, psnr), strict=True)]
    layout = dict(fig["layout"])
    for axis in ("xaxis", "xaxis2"):
        layout[axis] = dict(layout[axis], range=[0, max(ts) if len(ts) else 1])
    layout["yaxis"] = dict(layout["yaxis"], **log_axis(mse))  # the labelled powers of ten follow the values
    return go.Figure(data=data, layout=layout, _validate=False)


def mark_sweep(base: go.Figure, current_t: int, current: tuple[float, float] | None = None) -> go.Figure:
    """A copy of :func:`sweep_base`'s figure with the current t marked in both panels: a dashed line, and
    ``current`` = ``(mse, psnr)`` at ``current_t`` as big markers when given."""
    fig = copy_figure(base)
    if current is not None:  # the current t's two values, each in its own panel
        for axis, value, colour, name in (
            ("", current[0], NOISE_COLOUR, "current ε-MSE"),
            ("2", current[1], SIGNAL_COLOUR, "current PSNR"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=[current_t],
                    y=_finite([value]),
                    mode="markers",
                    showlegend=False,
                    marker=dict(size=11, color=colour, line=dict(color=MARKER_COLOUR, width=1)),
                    name=name,
                    xaxis=f"x{axis}",
                    yaxis=f"y{axis}",
                )
            )
    for axis in ("", "2"):  # what add_vline(row="all") adds, without its search through the subplot grid
        fig.add_shape(t_line(current_t, xref=f"x{axis}", yref=f"y{axis} domain"))
    return fig


def sweep_chart(
    ts: Sequence[int],
    mse: Sequence[float],
    psnr: Sequence[float],
    current_t: int,
    current: tuple[float, float] | None = None,
) -> go.Figure:
    """:func:`sweep_base` with :func:`mark_sweep`: both panels, the current t marked.

    :param current: ``(mse, psnr)`` at ``current_t``, drawn as big markers when given.
    """
    return mark_sweep(sweep_base(ts, mse, psnr), current_t, current)


def step_chart(
    steps: Sequence[int],
    values: Sequence[float],
    ts: Sequence[int],
    title: str,
    y_title: str,
    marker_step: int | None = None,
    reference: float | None = None,
    reference_name: str = "",
    colour: str = SIGNAL_COLOUR,
    min_span: float | None = None,
) -> go.Figure:
    """One series against the step number (1 = first reverse step), t in the hover, the current step marked.

    :param reference: an optional horizontal line (e.g. RMS 1 of true unit noise).
    :param min_span: the y axis covers at least this much (centred on the values), so that plotly's autorange
        does not blow a wobble smaller than the span up into a shape that fills the chart.
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=list(steps),
            y=_finite(values),
            customdata=list(ts),
            name=y_title,
            mode="lines",
            line=dict(color=colour),
            hovertemplate="step %{x}, t = %{customdata}<br>%{y:.3f}<extra></extra>",
        )
    )
    if reference is not None:
        fig.add_hline(y=reference, line=dict(color="grey", dash="dot"), annotation_text=reference_name)
    if marker_step is not None:
        fig.add_vline(x=marker_step, line=dict(color=MARKER_COLOUR, dash="dash"))
    fig.update_xaxes(title="reverse step (t decreases →)")
    fig.update_yaxes(title=y_title)
    finite = [v for v in _finite(values) if v is not None]
    if min_span is not None and finite:
        lo, hi = min(finite), max(finite)
        if hi - lo < min_span:
            mid = (lo + hi) / 2
            fig.update_yaxes(range=[mid - min_span / 2, mid + min_span / 2])
    return _layout(fig, title, height=300)


def psnr_chart(
    steps: Sequence[int], psnr: Sequence[float], ts: Sequence[int], marker_step: int | None = None
) -> go.Figure:
    """PSNR(x0_hat, x_0) against the step: how close each step's x_0 estimate is to the photo.

    The y axis spans at least :data:`PSNR_MIN_SPAN_DB`: a run whose estimate moves by 0.2 dB draws a flat line,
    not an arch."""
    return step_chart(
        steps,
        psnr,
        ts,
        "PSNR(x̂₀, x₀): the x₀ estimate at each step",
        "PSNR (dB)",
        marker_step,
        min_span=PSNR_MIN_SPAN_DB,
    )


def estimate_chart(
    steps: Sequence[int],
    to_result: Sequence[float],
    ts: Sequence[int],
    marker_step: int | None = None,
    photo: tuple[Sequence[int], Sequence[float]] | None = None,
) -> go.Figure:
    """PSNR(x̂₀, the run's result) against the step: the estimate sharpening into the picture the run ends on;
    with ``photo`` = ``(steps, dB)`` also PSNR(x̂₀, x₀) against the photo the run started from, dotted.

    :param steps: 1-based step numbers (the stored steps); :param ts: their timesteps, in the hover. A value of
        inf (the estimate is the result) is a gap. The y axis spans at least :data:`PSNR_MIN_SPAN_DB`.
    """
    fig = step_chart(
        steps,
        to_result,
        ts,
        "How close x̂₀ is to the run's result, step by step",
        "PSNR (dB)",
        marker_step,
        min_span=PSNR_MIN_SPAN_DB,
    )
    fig.data[0].name = "x̂₀ vs the result (the last step's sample)"
    fig.data[0].showlegend = True
    if photo is not None:
        fig.add_trace(
            go.Scatter(
                x=list(photo[0]), y=_finite(photo[1]), name="x̂₀ vs your photo x₀", mode="lines",
                line=dict(color=MARKER_COLOUR, dash="dot"),
            )
        )  # fmt: skip
        values = [v for v in (*_finite(to_result), *_finite(photo[1])) if v is not None]
        if values:
            lo, hi = min(values), max(values)
            pad = max(0.0, PSNR_MIN_SPAN_DB - (hi - lo)) / 2
            fig.update_yaxes(range=[lo - pad, hi + pad] if pad else None)
    return fig


def eps_norm_chart(
    steps: Sequence[int], rms: Sequence[float], ts: Sequence[int], marker_step: int | None = None
) -> go.Figure:
    """RMS of eps_hat (‖ε̂‖ / √#pixels) against the step; unit Gaussian noise has RMS 1."""
    return step_chart(
        steps,
        rms,
        ts,
        "‖ε̂‖ (RMS per pixel): how much noise the network sees",
        "RMS of ε̂",
        marker_step,
        reference=1.0,
        reference_name="true ε: RMS ≈ 1",
        colour=NOISE_COLOUR,
    )


def compare_chart(runs: dict, current_t: int) -> go.Figure:
    """Two (or more) runs on one t axis: PSNR(x̂₀, x₀) when every run has it, else ‖ε̂‖ RMS; t decreasing to the right.

    :param runs: ``{name: model.images.figure.Run}``.
    """
    use_psnr = all(r.psnr is not None for r in runs.values())
    fig = go.Figure()
    for (name, run), colour in zip(runs.items(), (SIGNAL_COLOUR, NOISE_COLOUR, "#2ca02c", "#9467bd"), strict=False):
        fig.add_trace(
            go.Scatter(
                x=list(run.ts),
                y=_finite(run.psnr if use_psnr else run.eps_rms),
                name=name,
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color=colour),
            )
        )
    fig.add_vline(x=current_t, line=dict(color=MARKER_COLOUR, width=2, dash="dash"))
    fig.update_xaxes(title="timestep t (the reverse process runs right to left → 0)", autorange="reversed")
    fig.update_yaxes(title="PSNR(x̂₀, x₀) (dB)" if use_psnr else "‖ε̂‖ RMS per pixel")
    values = [v for r in runs.values() for v in _finite(r.psnr or ())]
    if use_psnr and values and max(values) - min(values) < PSNR_MIN_SPAN_DB:  # 0.3 dB drawn as a cliff misleads
        mid = (max(values) + min(values)) / 2
        fig.update_yaxes(range=[mid - PSNR_MIN_SPAN_DB / 2, mid + PSNR_MIN_SPAN_DB / 2])
    title = "The x₀ estimate of both runs against t" if use_psnr else "‖ε̂‖ of both runs against t"
    return _layout(fig, title, height=320)


def sweep_psnr_chart(t_starts: Sequence[int], psnr: Sequence[float]) -> go.Figure:
    """PSNR(final sample, x₀) against the t_start the reverse process started from."""
    fig = go.Figure(
        go.Scatter(x=list(t_starts), y=_finite(psnr), mode="lines+markers", line=dict(color=SIGNAL_COLOUR), name="PSNR")
    )
    fig.update_xaxes(title="t_start")
    fig.update_yaxes(title="PSNR(final, x₀) (dB)")
    return _layout(fig, "Recovered or invented? PSNR per t_start", height=300)
