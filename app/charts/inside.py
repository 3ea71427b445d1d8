"""Pure figure builders for the "Inside the network" page: plain data in; a DOT string, a
``plotly.graph_objects.Figure`` or a Pillow picture out. No Streamlit here (tests/unit/app/test_page_inside.py
builds them directly).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw
from plotly.subplots import make_subplots

from app.charts.plots import MARKER_COLOUR, NOISE_COLOUR, SIGNAL_COLOUR, layout
from app.charts.render import DISPLAY_PX
from model.images.tensors import to_picture
from model.nets.anatomy import Architecture

SELECTED_FILL = "#ffe08a"
ATTENTION_FILL = "#e3f0ff"
GAP_COLOUR = (226, 232, 244)  # between channel tiles (not a grey level, so it cannot be read as a value)
MAX_HEADS_SHOWN = 8


def count(n: int) -> str:
    """A parameter count, short: 896, 30.0k, 2.38M."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}k" if n >= 1_000 else str(n)


def shape_text(shape: Sequence[int] | None) -> str:
    return "?" if shape is None else "×".join(str(int(s)) for s in shape)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


DIAGRAM_BACKGROUND = "#ffffff"  # the diagram is drawn on white in either theme


def architecture_dot(
    arch: Architecture,
    selected: str | None = None,
    shapes: dict[str, tuple[int, int, int]] | None = None,
    label_name: str | None = None,
) -> str:
    """The U-Net as a Graphviz DOT graph: the down path on the left, the mid block at the bottom, the up
    path on the right, skip connections dashed, and the time (and label) embedding entering below.

    :param shapes: ``{part: output shape}`` measured in a forward pass; used where the config gives none.
    :param label_name: the class label fed in, for a class-conditional model (draws the label embedding).
    """
    shapes = shapes or {}
    node = {p.name: p for p in arch.parts}
    lines = [
        "digraph unet {",
        # A light card of its own: Graphviz draws black text, and on a transparent background the plain labels,
        # the time-embedding box and the edge labels were black on near-black in Streamlit's dark theme.
        f'  graph [rankdir=TB, nodesep=0.25, ranksep=0.28, fontname="Helvetica", bgcolor="{DIAGRAM_BACKGROUND}", '
        "pad=0.15];",
        '  node [shape=box, style="rounded,filled", fillcolor="#f4f4f4", color="#888888", '
        'fontname="Helvetica", fontsize=10];',
        '  edge [color="#555555", arrowsize=0.6, fontname="Helvetica", fontsize=9];',
    ]
    first = arch.parts[0]
    last = arch.parts[-1]
    in_shape = first.in_shape or None
    out_shape = last.out_shape or shapes.get(last.name)
    lines.append(
        f'  "x_t" [label={_dot_quote("x_t (the noisy input)" + chr(10) + shape_text(in_shape))}, shape=plaintext, style=""];'
    )
    lines.append(
        f'  "eps" [label={_dot_quote("the network output (ε̂, v̂ or x̂₀)" + chr(10) + shape_text(out_shape))}, '
        'shape=plaintext, style=""];'
    )
    for p in arch.parts:
        out = p.out_shape or shapes.get(p.name)
        rows = [f"{p.name} · {p.class_name}"]
        rows.append(f"{shape_text(p.in_shape)} → {shape_text(out)}" if p.in_shape else shape_text(out))
        inner = []
        if p.resnets:
            inner.append(f"{len(p.resnets)} ResNet" + ("s" if len(p.resnets) > 1 else ""))
        if p.attentions:
            inner.append(f"self-attention ({p.heads} head{'s' if p.heads != 1 else ''})")
        if p.resample:
            inner.append(p.resample)
        if inner:
            rows.append(" · ".join(inner))
        rows.append(f"{count(p.params)} parameters")
        fill = SELECTED_FILL if p.name == selected else (ATTENTION_FILL if p.attentions else "#f4f4f4")
        pen = 2.5 if p.name == selected else 1.0
        lines.append(
            f'  {_dot_quote(p.name)} [label={_dot_quote(chr(10).join(rows))}, fillcolor="{fill}", penwidth={pen}];'
        )

    downs = [p.name for p in arch.parts if p.kind == "down"]
    ups = [p.name for p in arch.parts if p.kind == "up"]
    # the U: conv_in beside conv_out, down i beside up n-1-i (edges of the up path are drawn reversed
    # with dir=back so that every edge points down in the ranking)
    lines.append('  {rank=same; "x_t"; "eps"}')
    lines.append('  {rank=same; "conv_in"; "conv_out"}')
    for i, d in enumerate(downs):
        j = len(ups) - 1 - i
        if 0 <= j < len(ups):
            lines.append(f'  {{rank=same; "{d}"; "{ups[j]}"}}')
    path_down = ["x_t", "conv_in", *downs] + (["mid"] if "mid" in node else [])
    for a, b in zip(path_down, path_down[1:], strict=False):
        lines.append(f'  "{a}" -> "{b}";')
    path_up = [path_down[-1], *ups, "conv_out", "eps"]
    for a, b in zip(path_up, path_up[1:], strict=False):
        lines.append(f'  "{b}" -> "{a}" [dir=back];')
    for src, dst, n in arch.skips:
        lab = f', label="×{n}"' if n > 1 else ""
        lines.append(f'  "{src}" -> "{dst}" [style=dashed, color="{SIGNAL_COLOUR}", constraint=false{lab}];')

    emb = f"t → sinusoidal features ({arch.time_dim}) → time MLP → emb ({arch.emb_dim})"
    if arch.time_kind != "sinusoidal":
        emb = f"t → {arch.time_kind} → time MLP → emb ({arch.emb_dim})"
    emb += f"\n{count(arch.time_params)} parameters · added in every ResNet block"
    lines.append(f'  "emb" [label={_dot_quote(emb)}, shape=box, style="dashed,rounded", color="{NOISE_COLOUR}"];')
    if label_name is not None:
        lab = f"label y = {label_name} → class embedding ({arch.emb_dim})\n{count(arch.label_params)} parameters"
        lines.append(f'  "label" [label={_dot_quote(lab)}, shape=box, style="dashed,rounded", color="{NOISE_COLOUR}"];')
        # drawn below the time embedding (an edge pointing up, dir=back), which keeps the diagram narrow
        lines.append(f'  "emb" -> "label" [dir=back, style=dashed, color="{NOISE_COLOUR}", label="+"];')
    anchor = "mid" if "mid" in node else (downs[-1] if downs else "conv_in")
    lines.append(f'  "{anchor}" -> "emb" [style=invis];')
    lines.append("}")
    return "\n".join(lines)


def mosaic(pictures: np.ndarray, tile: int = 96, gap: int = 4, columns: int | None = None) -> Image.Image:
    """(K, h, w) uint8 grey maps side by side (``columns`` per row), each upscaled without smoothing to
    about ``tile`` px, on a light-blue background."""
    k, h, w = pictures.shape
    f = max(1, tile // max(h, w))
    th, tw = h * f, w * f
    cols = columns or k
    rows = -(-k // cols)
    canvas = Image.new("RGB", (cols * tw + (cols - 1) * gap, rows * th + (rows - 1) * gap), GAP_COLOUR)
    for i in range(k):
        img = Image.fromarray(pictures[i], mode="L").resize((tw, th), Image.Resampling.NEAREST).convert("RGB")
        canvas.paste(img, ((i % cols) * (tw + gap), (i // cols) * (th + gap)))
    return canvas


def mark_query(picture: np.ndarray, grid: tuple[int, int], row: int, col: int, size: int = DISPLAY_PX) -> Image.Image:
    """The (R, R, 3) uint8 picture upscaled, with the attention grid cell (row, col) outlined in red."""
    img = to_picture(picture, size).copy()
    h, w = grid
    cw, ch = img.width / w, img.height / h
    draw = ImageDraw.Draw(img)
    lw = max(3, img.width // 64)
    draw.rectangle([col * cw, row * ch, (col + 1) * cw - 1, (row + 1) * ch - 1], outline=(230, 30, 30), width=lw)
    return img


def time_heatmap(ts: Sequence[int], table: np.ndarray, t: int) -> go.Figure:
    """The sinusoidal features as a heat-map over dimension (rows) × t (columns), the current t marked."""
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(table).T,
            x=list(ts),
            y=list(range(table.shape[1])),
            colorscale="RdBu",
            zmid=0,
            colorbar=dict(title="value", thickness=12),
            hovertemplate="t = %{x}<br>dimension %{y}<br>value %{z:.3f}<extra></extra>",
        )
    )
    fig.add_vline(x=t, line=dict(color=MARKER_COLOUR, width=2, dash="dash"))
    fig.update_xaxes(title="timestep t")
    fig.update_yaxes(title="feature dimension", autorange="reversed")
    return layout(fig, f"Sinusoidal features of every t (t = {t} dashed)", height=330)


def features_chart(features: np.ndarray, t: int) -> go.Figure:
    """The features at the current t: one value per dimension (one column of the heat-map)."""
    v = np.asarray(features, dtype=float)
    fig = go.Figure(go.Bar(x=list(range(len(v))), y=v, marker_color=SIGNAL_COLOUR, name=f"t = {t}"))
    fig.update_xaxes(title="feature dimension")
    fig.update_yaxes(title="value", range=[-1.05, 1.05])
    return layout(fig, f"The features of t = {t}", height=280)


def embedding_chart(time_out: np.ndarray, label_out: np.ndarray | None = None, label_name: str = "") -> go.Figure:
    """The time MLP's output at t, and (conditional models) the label embedding beside it."""
    fig = go.Figure()
    x = list(range(len(time_out)))
    fig.add_trace(go.Bar(x=x, y=np.asarray(time_out, dtype=float), name="time MLP output", marker_color=NOISE_COLOUR))
    if label_out is not None:
        fig.add_trace(
            go.Bar(
                x=x, y=np.asarray(label_out, dtype=float), name=f"label embedding: {label_name}", marker_color="#2ca02c"
            )
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="embedding dimension")
    fig.update_yaxes(title="value")
    title = "What the time MLP makes of them" + (
        " (and the label's embedding, added to it)" if label_out is not None else ""
    )
    return layout(fig, title, height=280)


def injection_chart(names: Sequence[str], time_rms: Sequence[float], conv1_rms: Sequence[float]) -> go.Figure:
    """RMS of the time projection each ResNet block adds, beside the RMS of the conv output it is added to."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(names), y=list(time_rms), name="time projection (added)", marker_color=NOISE_COLOUR))
    fig.add_trace(
        go.Bar(x=list(names), y=list(conv1_rms), name="conv1 output (it is added to)", marker_color="#bbbbbb")
    )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="ResNet block", tickangle=-45)
    fig.update_yaxes(title="RMS")
    return layout(fig, "How strongly t enters each ResNet block", height=340, axis_px=120)  # slanted names


def attention_chart(weights: np.ndarray, row: int, col: int) -> go.Figure:
    """Per head, one query position's attention weights over the key positions; the query marked ×."""
    heads = min(len(weights), MAX_HEADS_SHOWN)
    fig = make_subplots(rows=1, cols=heads, subplot_titles=[f"head {i}" for i in range(heads)], horizontal_spacing=0.03)
    zmax = float(np.max(weights[:heads])) or 1.0
    for i in range(heads):
        fig.add_trace(
            go.Heatmap(
                z=weights[i],
                zmin=0,
                zmax=zmax,
                colorscale="Viridis",
                showscale=i == heads - 1,
                colorbar=dict(title="weight", thickness=12),
                hovertemplate="key row %{y}, col %{x}<br>weight %{z:.4f}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        fig.add_trace(
            go.Scatter(
                x=[col],
                y=[row],
                mode="markers",
                marker=dict(symbol="x", size=12, color="red"),
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=i + 1,
        )
        h, w = weights[i].shape
        fig.update_xaxes(range=[-0.5, w - 0.5], constrain="domain", row=1, col=i + 1)
        fig.update_yaxes(
            range=[h - 0.5, -0.5],  # row 0 at the top, as in the picture
            scaleanchor=f"x{i + 1 if i else ''}",
            constrain="domain",
            showticklabels=i == 0,
            row=1,
            col=i + 1,
        )
    height = 300 if heads <= 4 else 240
    return layout(fig, f"Where query (row {row}, col {col}) looks, per head", height)
