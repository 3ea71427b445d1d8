"""Pure Plotly builders for the words-to-pictures page: plain arrays in, ``go.Figure`` out (no Streamlit here).

Latents are (4, 8, 8) float32; embeddings (L, 128); attention (S, L, 8, 8), each position's weights summing to 1
over all 12 token slots (the page passes the prompt's L of them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.charts.plots import layout

LATENT_RANGE = 3.0  # latent values drawn from -3 (blue) to 3 (red)


def latent_channels(z: np.ndarray, t: int) -> go.Figure:
    """The latent x_t's 4 channels, one 8×8 heatmap each (the picture the U-Net works on)."""
    fig = make_subplots(1, 4, subplot_titles=[f"channel {c}" for c in range(4)], horizontal_spacing=0.03)
    for c in range(4):
        fig.add_trace(
            go.Heatmap(
                z=z[c][::-1],
                zmin=-LATENT_RANGE,
                zmax=LATENT_RANGE,
                colorscale="RdBu_r",
                showscale=c == 3,
                hovertemplate="value %{z:.2f}<extra></extra>",
            ),
            1,
            c + 1,
        )
    fig.update_xaxes(showticklabels=False)
    for c in range(4):  # each channel square
        fig.update_yaxes(showticklabels=False, scaleanchor=f"x{c + 1 if c else ''}", scaleratio=1, row=1, col=c + 1)
    return layout(fig, f"The latent x_t at t = {t}: 4 channels of 8×8 numbers", height=260)


def embedding_heatmap(emb: np.ndarray, tokens: Sequence[str]) -> go.Figure:
    """The text encoder's output: one row of 128 numbers per token."""
    fig = go.Figure(
        go.Heatmap(
            z=emb[::-1],
            y=list(tokens)[::-1],
            colorscale="RdBu_r",
            zmid=0,
            hovertemplate="%{y}, number %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="the 128 numbers of each token's embedding")
    return layout(fig, "What the U-Net reads: one embedding per token", height=140 + 24 * len(tokens))


def attention_over_steps(attention: np.ndarray, tokens: Sequence[str], timesteps: Sequence[int]) -> go.Figure:
    """How much of the picture's attention each token gets, step by step (mean over the 8×8 positions)."""
    share = attention.mean(axis=(2, 3))  # (S, L)
    fig = go.Figure()
    for k, tok in enumerate(tokens):
        fig.add_trace(go.Scatter(x=list(timesteps), y=share[:, k], mode="lines+markers", name=tok))
    fig.update_xaxes(title="t", autorange="reversed")
    fig.update_yaxes(title="share of attention", rangemode="tozero")
    return layout(fig, "Which word the picture listens to, step by step", height=320)
