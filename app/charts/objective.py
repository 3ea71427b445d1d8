"""Pure Plotly builders for the "Training objective" page: plain data in, ``go.Figure`` out.

No Streamlit here; ``tests/unit/app/test_plots_objective.py`` builds the figures directly.
Timesteps are indices 0 .. T-1 (index 0 = the first noising step); the bound term
plotted at index t is Ho et al.'s L_t (index 0 = the decoder L_0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from app.charts.plots import layout, log_axis

MSE_COLOUR = "#d62728"
VLB_COLOUR = "#1f77b4"
SIMPLE_COLOUR = "#ff7f0e"
DECODER_COLOUR = "#2ca02c"
FLOOR = 1e-12  # values below this are drawn at this height on log axes


def _layout(fig: go.Figure, title: str, height: int = 340) -> go.Figure:
    return layout(fig, title, height)


def eps_mse_chart(
    ts: Sequence[int], mean: Sequence[float], std: Sequence[float], n_draws: int, T: int | None = None
) -> go.Figure:
    """eps-MSE against t: the mean over ``n_draws`` noise draws, with a band of ± one std, log y.

    :param ts: K timestep indices (increasing). :param mean, std: K values each (std >= 0).
    """
    x = np.asarray(ts, dtype=float)
    m = np.maximum(np.asarray(mean, dtype=float), FLOOR)
    s = np.asarray(std, dtype=float)
    lo, hi = np.maximum(m - s, m * 0.05), m + s  # a log axis cannot show <= 0
    fig = go.Figure()
    # The band: a clearly tinted fill with thin edges, plus whiskers on each point, so that even a narrow
    # spread (the MSE of a whole image varies little between draws) can be seen.
    edge = dict(width=1, color="rgba(214,39,40,0.6)", dash="dot")
    fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line=edge, showlegend=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=x,
            y=lo,
            mode="lines",
            line=edge,
            fill="tonexty",
            fillcolor="rgba(214,39,40,0.35)",
            name=f"± 1 std over {n_draws} draws of ε" if n_draws > 1 else "spread: needs 2 or more draws of ε",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=m,
            mode="lines+markers",
            marker=dict(size=5),
            line=dict(color=MSE_COLOUR),
            error_y=dict(type="data", symmetric=False, array=hi - m, arrayminus=m - lo, width=4, thickness=1.5),
            name="mean ‖ε − ε_θ(x_t, t)‖² / dim",
        )
    )
    fig.update_xaxes(title="timestep t", range=[0, (T - 1) if T else float(x.max()) if len(x) else 1])
    fig.update_yaxes(title="ε-MSE (log)", **log_axis(np.concatenate([lo, hi])))
    return _layout(fig, "The simple loss at each t, on your image")


def bound_terms_chart(ts: Sequence[int], terms_bpd: Sequence[float], exact: bool, T: int | None = None) -> go.Figure:
    """The bound's terms L_t (bits/dim) against t, log y; L_0 (the decoder, t = 0) drawn apart.

    :param ts: timestep indices in any order (may repeat for a sampled estimate).
    :param terms_bpd: the term at each index. :param exact: True for all T terms (a line),
        False for a sampled estimate (points).
    """
    x = np.asarray(ts, dtype=float)
    y = np.asarray(terms_bpd, dtype=float)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    kl = x > 0
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x[kl],
            y=np.maximum(y[kl], FLOOR),
            mode="lines" if exact else "markers",
            marker=dict(size=6, color=VLB_COLOUR),
            line=dict(color=VLB_COLOUR),
            # plain text (a legend cannot typeset LaTeX), and the page's own name for the term: L_{t−1}
            name="KL term Lₜ₋₁ = KL(q(xₜ₋₁ | x_t, x₀) ‖ pθ(xₜ₋₁ | x_t))" + ("" if exact else ", sampled t"),
        )
    )
    if (~kl).any():
        fig.add_trace(
            go.Scatter(
                x=x[~kl],
                y=np.maximum(y[~kl], FLOOR),
                mode="markers",
                marker=dict(size=11, symbol="diamond", color=DECODER_COLOUR),
                name="L₀ = −log pθ(x₀ | x₁), the decoder",
            )
        )
    fig.update_xaxes(title="timestep t", range=[-5, (T - 1) if T else float(x.max()) if len(x) else 1])
    fig.update_yaxes(title="bits/dim (log)", **log_axis(np.maximum(y, FLOOR)))
    return _layout(fig, "Each bound term, in bits per dimension")


def weights_chart(
    vlb: Sequence[float], simple: Sequence[float], others: dict[str, Sequence[float]] | None = None
) -> go.Figure:
    """How strongly each objective weights eps-MSE at each t, each scaled to mean 1, log y.

    :param vlb: (T,) lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)), normalised.
    :param simple: (T,) all equal (L_simple), normalised.
    :param others: more (T,) weightings by name, e.g. the v-loss 1 / alpha_bar_t, drawn dotted.
    """
    t = np.arange(len(vlb))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=t, y=np.asarray(vlb, float), name="VLB: λ_t = β_t² / (2σ_t² α_t (1−ᾱ_t))", line=dict(color=VLB_COLOUR)
        )
    )
    fig.add_trace(
        go.Scatter(
            x=t,
            y=np.asarray(simple, float),
            name="L_simple: 1 for every t",
            line=dict(color=SIMPLE_COLOUR, dash="dash"),
        )
    )
    for name, ys in (others or {}).items():
        fig.add_trace(go.Scatter(x=t, y=np.asarray(ys, float), name=name, line=dict(dash="dot")))
    fig.update_xaxes(title="timestep t", range=[0, len(vlb) - 1])
    ys = [vlb, simple, *(others or {}).values()]
    fig.update_yaxes(
        title="weight on ε-MSE (mean over t = 1, log)", **log_axis(np.concatenate([np.ravel(v) for v in ys]))
    )
    return _layout(fig, "Two weightings of the same ε-MSE")


def bits_chart(
    values: dict[str, float], errors: dict[str, float] | None = None, first_is_bound: bool = True
) -> go.Figure:
    """Horizontal bars of bits/dim (the bound beside PNG and JPEG), with optional ± error bars.

    The first bar is the bound's colour; ``first_is_bound=False`` (the references alone, while the bound is being
    computed) draws every bar grey.
    """
    names = list(values)
    vals = [float(values[k]) for k in names]
    err = [float((errors or {}).get(k, 0.0)) for k in names]
    colours = [VLB_COLOUR if i == 0 and first_is_bound else "#7f7f7f" for i in range(len(names))]
    fig = go.Figure(
        go.Bar(
            x=vals,
            y=names,
            orientation="h",
            marker_color=colours,
            error_x=dict(type="data", array=err, visible=any(e > 0 for e in err)),
            text=[f"{v:.2f}" for v in vals],
            textposition="inside",
            insidetextanchor="start",
        )
    )
    fig.update_xaxes(title="bits per dimension (8 = raw 8-bit pixels)", rangemode="tozero")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "What this picture costs", height=260)


def train_step_chart(loss_before: float, loss_after: float, target: str = "ε") -> go.Figure:
    """Two bars: the batch loss before and after one gradient step; ``target`` names what the output is compared with."""
    fig = go.Figure(
        go.Bar(
            x=["before the step", "after the step"],
            y=[loss_before, loss_after],
            marker_color=["#7f7f7f", SIMPLE_COLOUR],
            text=[f"{loss_before:.5f}", f"{loss_after:.5f}"],
            textposition="outside",
        )
    )
    fig.update_yaxes(title=f"MSE against {target} on the batch", rangemode="tozero")
    return _layout(fig, "One gradient step, on a copy of the model", height=300)
