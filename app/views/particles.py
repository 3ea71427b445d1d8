"""Page: the particle lab. Diffusion on a 2-D point set, where the ideal denoiser has a closed form."""

from __future__ import annotations

import streamlit as st
import torch

from app.charts import particles as pp
from app.compute import particles as bp
from app.compute.particles import data, lab, mlp, paths
from app.session import state

state.set_default("pl_data", "moons")
state.set_default("pl_n", 300)
state.set_default("pl_k", 2)
state.set_default("pl_seed", 0)
state.set_default("pl_text", "0.5, 0.3\n-0.5, -0.2\n0.0, 0.6")
state.set_default("pl_mode", "ε-prediction (DDPM)")
state.set_default("pl_use", "all points")
state.set_default("pl_t", 500)
state.set_default("pl_steps", 25)
state.set_default("pl_train_steps", 1000)
state.set_default("pl_brush_n", 0)  # the brush chart's key: a new one (an empty selection) after each lasso is taken
state.set_default("pl_sigma", 0.5)  # flow matching's noise level (its own slider; t for eps-prediction)
MODES = ("ε-prediction (DDPM)", "flow matching")

st.title("Particle lab: diffusion on points you can see")
st.markdown(
    "With a finite data set the *perfect* denoiser needs no training: the posterior over which point was noised is a "
    "softmax, and x̂₀ is the softmax-weighted mean of the points. Watch its field with 1 point, 2 points, then all of "
    "them; follow particles from noise to data along the ODE and the SDE; then train a small network live and lay "
    "its field over the exact one."
)


BRUSH_GRID = data.brush_grid()


def read_points() -> torch.Tensor:
    """The chosen data set as (N, 2), or one sentence and ``st.stop()`` for bad input."""
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox("Data set", data.DATASETS, key="pl_data", persist_state="session")
    seed = int(c3.number_input("Seed", 0, 2**31 - 1, key="pl_seed", persist_state="session"))
    if name == "few points":
        k = c2.slider("Points", 1, 8, key="pl_k", persist_state="session")
        return bp.dataset(name, int(k), seed)
    if name != "your points":
        n = c2.select_slider("Points", [50, 100, 300, 1000], key="pl_n", persist_state="session")
        return bp.dataset(name, int(n), seed)
    st.text_area(
        "Your points, one per line as x, y (keep them within ±1.5); the brush below adds to them",
        key="pl_text",
        persist_state="session",
        height=120,
        max_chars=data.MAX_TEXT_CHARS,  # the browser stops there, and the server cuts a longer value to it
    )
    with st.container(key="pl_brush"):
        st.plotly_chart(
            pp.brush_figure(BRUSH_GRID.numpy()),
            key=f"pl_brush_{st.session_state['pl_brush_n']}",
            on_select=take_brush,
            selection_mode=("lasso", "box"),
            width="stretch",
        )
    problem = st.session_state.pop("pl_brush_problem", None)
    if problem:
        st.warning(problem)
    points, error = typed_points(st.session_state["pl_text"])
    if error:
        st.warning(error)
        st.stop()
    st.caption(f"{len(points)} point(s).")
    return points


def typed_points(text: str) -> tuple[torch.Tensor | None, str | None]:
    """(points, None) or (None, one sentence) for the text box, read once per text: a rerun with the same text (every
    slider move) reuses the last reading instead of parsing it again."""
    memo = st.session_state.get("pl_parsed")
    if memo is not None and memo[0] == text:
        return memo[1], memo[2]
    try:
        if len(text) >= data.MAX_TEXT_CHARS:
            raise ValueError(
                f"The text filled the box's {data.MAX_TEXT_CHARS:,} characters, so its end may be cut off: "
                f"keep it to at most {data.MAX_POINTS:,} points, one per line."
            )
        found = (data.parse_points(text), None) if text.strip() else (None, data.NO_POINTS)
    except ValueError as exc:
        found = (None, str(exc))
    st.session_state["pl_parsed"] = (text, *found)
    return found


def take_brush() -> None:
    """The brush's ``on_select``: add the selected grid dots to the text box (where a person sees and edits them),
    then draw a fresh brush (a new key, with no selection), so the next lasso adds to the points instead of
    replacing the last one. A selection the grid could not have made gets one sentence."""
    key = f"pl_brush_{st.session_state['pl_brush_n']}"
    st.session_state["pl_brush_n"] += 1
    try:
        try:
            entries = st.session_state[key]["selection"]["points"]
        except (KeyError, TypeError, AttributeError, ValueError):  # (ValueError: not JSON)
            entries = None  # not a selection at all: selection_indices says so
        indices = data.selection_indices(entries, len(BRUSH_GRID))
        if not indices:
            return
        text = data.add_to_text(st.session_state["pl_text"], data.brushed(indices, BRUSH_GRID))
        if len(text) >= data.MAX_TEXT_CHARS:
            raise ValueError(f"With these the box would pass its {data.MAX_TEXT_CHARS:,} characters: brush fewer.")
        st.session_state["pl_text"] = text
    except ValueError as exc:
        st.session_state["pl_brush_problem"] = str(exc)


points = read_points()
if len(points) == 1:
    st.info("One point: every path runs straight to it. Add a second point to see the field split.")
sched = bp.schedule()
mode = st.radio("Parametrisation", MODES, key="pl_mode", horizontal=True, persist_state="session")
is_flow = mode == MODES[1]

# --- 1. the exact denoiser -------------------------------------------------------------------------------------------
st.header("1. The exact denoiser of the point set")
# one short line per formula, so that each fits a phone's 400-px column (one long line ran off the screen)
if is_flow:
    st.latex(
        r"\begin{gathered}x_\sigma=(1-\sigma)\,x_0+\sigma\varepsilon\\"
        r"w_i=\mathrm{softmax}_i\!\Big(-\frac{\|x_\sigma-(1-\sigma)x^{(i)}\|^2}{2\sigma^2}\Big)\\"
        r"\hat x_0=\sum_i w_i\,x^{(i)},\qquad \hat v=\frac{x_\sigma-\hat x_0}{\sigma}\end{gathered}"
    )
else:
    st.latex(
        r"\begin{gathered}x_t=\sqrt{\bar\alpha_t}\,x_0+\sqrt{1-\bar\alpha_t}\,\varepsilon\\"
        r"w_i=\mathrm{softmax}_i\!\Big(-\frac{\|x_t-\sqrt{\bar\alpha_t}\,x^{(i)}\|^2}{2(1-\bar\alpha_t)}\Big)\\"
        r"\hat x_0=\sum_i w_i\,x^{(i)}\end{gathered}"
    )
c1, c2 = st.columns([2, 1])
if is_flow:  # the slider is the σ the chart shows (σ = (t + 1) / T, model/particles/lab.py)
    sigma = c1.slider(
        "σ, the noise level (1 = pure noise, 0 = the data)", 0.001, 1.0, step=0.001, format="%.3f", key="pl_sigma",
        persist_state="session",
    )  # fmt: skip
    t = min(sched.T - 1, max(0, round(float(sigma) * sched.T) - 1))
else:
    t = int(c1.slider("t (0 = the first noising step)", 0, sched.T - 1, key="pl_t", persist_state="session"))
use = c2.radio("Points used", ["1 point", "2 points", "all points"], key="pl_use", horizontal=True)
subset = points[: {"1 point": 1, "2 points": 2}.get(use, len(points))]
exact_field = bp.exact_field(subset, t, is_flow)
if is_flow:
    caption = f"σ = {exact_field.sigma:.3f}: arrows are −v̂ (where Euler moves a particle as σ falls)."
else:
    caption = f"ᾱ_t = {sched.alpha_bar_floats[t]:.4f}: arrows are the probability-flow drift ½β(t)(x − ε̂/√(1−ᾱ_t))."
level = f"σ = {exact_field.sigma:.3f}" if is_flow else f"t = {t}"
title = f"Exact field at {level}, {len(subset)} point(s)"
field_box = st.empty()
st.caption(caption + " Arrow lengths are scaled to the longest one.")

# --- 2. paths --------------------------------------------------------------------------------------------------------
st.header("2. From noise to data: ODE and SDE on the same seeds")
steps = int(st.slider("Sampling steps", 2, 100, key="pl_steps", persist_state="session"))
groups = bp.exact_paths(subset, steps, int(st.session_state["pl_seed"]), is_flow)
if is_flow:
    note = (
        "Both start from the same noise. Flow matching samples with the ODE; the SDE is DDPM's, drawn in the flow "
        "frame x / (√ᾱ + √(1−ᾱ)): the same distributions at every step, reached along jittery paths."
    )
else:
    note = "Both start from the same x_T; the SDE adds fresh noise at every step, the ODE none."
st.plotly_chart(
    pp.paths_figure(subset.numpy(), {k: v.numpy() for k, v in groups.items()}, "Paths of the exact denoiser"),
    width="stretch",
)
cols = st.columns(len(groups))
for col, (name, path) in zip(cols, groups.items(), strict=True):
    col.metric(f"{name}: straightness", f"{float(paths.straightness(path).mean()):.3f}")
    col.caption(f"Mean distance of the end points to the nearest data point: {lab.nearest_distance(path, subset):.4f}")
st.caption(note + " Straightness = |end − start| / path length (1 = a straight line).")

# --- 3. train a network ---------------------------------------------------------------------------------------------
st.header("3. Train a small network live, and compare its field")
kind = "flow" if is_flow else "epsilon"
c1, c2 = st.columns([1, 2])
train_steps = c1.select_slider("Training steps", [250, 500, 1000, 1500, 2000], key="pl_train_steps")
config = mlp.TrainConfig(kind=kind, steps=int(train_steps), seed=int(st.session_state["pl_seed"]))
key = (bp.points_key(points), config)
c2.caption(
    f"A 3-layer MLP (128 wide) learns {'v = ε − x₀' if is_flow else 'ε'} on all {len(points)} points with the simple "
    f"loss; {train_steps} steps of 256 points take a few seconds on one core. Trainings run one at a time for the "
    "whole class, in arrival order; the same settings are trained once and shared."
)
result = bp.trained(key)
learned_np = None  # the learned field on the grid, for section 1's overlay
if result is None and st.button("Train the network", type="primary"):
    status, loss_box, sample_box = st.empty(), st.empty(), st.empty()
    bar = st.progress(0.0, text="Queued…")
    try:
        for item in bp.train_live(points, config):
            if isinstance(item, int):
                status.info(f"Waiting for a free trainer: {item} training(s) ahead of yours.")
                continue
            status.empty()
            bar.progress(item.step / item.of, text=f"Step {item.step} of {item.of} ({item.seconds:.1f} s)")
            if item.step % 250 == 0 or item.done:
                loss_box.plotly_chart(pp.loss_figure(item.losses, item.of), width="stretch")
    except ValueError as exc:
        st.warning(str(exc))
    result = bp.trained(key)
    bar.empty()
    loss_box.empty()  # the finished curve is drawn below with the samples

if result is None:
    st.caption("Press *Train the network* to fit it; the loss curve fills in as it learns.")
else:
    net_view = lab.learned(sched, result.net, points, exact_field.grid, t, is_flow)
    c1, c2 = st.columns(2)
    c1.plotly_chart(pp.loss_figure(result.losses, len(result.losses)), width="stretch", key="pl_loss")
    c2.plotly_chart(
        pp.samples_figure(
            points.numpy(),
            net_view.samples.numpy(),
            f"{lab.N_SAMPLES} samples, {lab.SAMPLE_STEPS} steps (MMD² {net_view.mmd:.4f})",
        ),
        width="stretch",
    )
    st.caption(
        f"Trained in {result.seconds:.1f} s. MMD² compares the samples with the data (0 = same distribution); the "
        f"learned field (red) is drawn over the exact one (blue) in section 1, at the same {'σ' if is_flow else 't'}. "
        "Where the two disagree the network has smoothed the data: it cannot memorise every point, which is why it generalises."
    )
    if len(subset) == len(points):
        learned_np = net_view.field.numpy()
    else:
        st.caption("The overlay needs *all points* in section 1: the network was trained on all of them.")
field_box.plotly_chart(
    pp.field_figure(
        subset.numpy(),
        exact_field.grid.numpy(),
        exact_field.field.numpy(),
        title,
        noisy=exact_field.noisy.numpy(),
        learned=learned_np,
    ),
    width="stretch",
)
