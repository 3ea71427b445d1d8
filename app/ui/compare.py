"""Compare on the Reverse trajectory page: the last few runs of this session side by side on one t axis, and the
t_start sweep (where recovering your photo turns into inventing a new one).

The runs are kept in ``st.session_state["traj_history"]`` (newest first), trimmed by
:func:`model.images.figure.keep_recent` to at most 4 runs and, together, the 48 MB cap one run had before.
"""

from __future__ import annotations

import streamlit as st
import torch

from app.charts import reverse as plots_reverse
from app.charts.render import DISPLAY_PX, plural
from app.compute import estimates
from app.compute import reverse as backend_reverse
from app.ui.common import progress_bar
from model.diffusion.trajectory import make_timesteps
from model.images import figure
from model.images.tensors import to_picture
from model.nets.network import LoadedModel

HISTORY_KEY = "traj_history"
COUNTER_KEY = "traj_run_count"  # runs remembered in this session: the next run's id
MAX_RUNS = 4
NEWEST_KEY = "cmp_newest"  # the newest run when A and B were last set: a newer one becomes B
LOST_ON_RELOAD = (
    "The runs live in this browser tab only: reloading the page or closing the tab loses them (download a grid, "
    "GIF or slide above to keep one)."
)


def describe(stored: dict) -> str:
    """A run's settings in one line: sampler, η, steps, t_start, seed (and class, guidance)."""
    s: backend_reverse.TrajectorySettings = stored["settings"]
    text = f"{s.sampler.upper()}{f' η = {s.eta:g}' if s.sampler == 'ddim' else ''}, {plural(s.steps, 'step')} from t = {s.t_start}, seed {s.seed}"
    if s.label is not None:
        text += f", class {stored['classes'][s.label]}, w = {s.guidance:g}"
    return text + f" ({'photo' if s.image_key else 'noise'}, {s.resolution} px)"


def remember(stored: dict) -> None:
    """Put a finished run first in the session's history (one entry per exact setting), within the memory cap."""
    ss = st.session_state
    ss[COUNTER_KEY] = ss.get(COUNTER_KEY, 0) + 1
    stored["run_id"] = ss[COUNTER_KEY]  # what the Run A / Run B choices hold: a run, not a position in the list
    history = [h for h in ss.get(HISTORY_KEY, []) if h["settings"] != stored["settings"]]
    by_run = {id(h["run"]): h for h in history}
    kept = figure.keep_recent([h["run"] for h in history], stored["run"], max_runs=MAX_RUNS)
    ss[HISTORY_KEY] = [stored] + [by_run[id(r)] for r in kept[1:]]


def _labels(history: list[dict]) -> dict[int, str]:
    """{run id: its one-line description}; two runs that read the same (e.g. two models) get their run number."""
    texts = [describe(h) for h in history]
    return {
        h["run_id"]: text + (f" · run {h['run_id']}" if texts.count(text) > 1 else "")
        for h, text in zip(history, texts, strict=True)
    }


def render_compare() -> None:
    history = st.session_state.get(HISTORY_KEY, [])
    st.subheader("Compare two runs")
    if len(history) < 2:
        st.caption(
            f"Run with other settings (DDIM vs DDPM, 10 vs 50 steps, two η values) and the last {MAX_RUNS} runs "
            "appear here side by side, the newest always one of the two. " + LOST_ON_RELOAD
        )
        return
    by_id = {h["run_id"]: h for h in history}
    labels = _labels(history)
    ss = st.session_state
    newest = history[0]["run_id"]
    if ss.get(NEWEST_KEY) != newest:  # a run since the pair was chosen: it becomes B, the B before it A
        b_before = ss.get("cmp_b")
        ss["cmp_a"] = b_before if b_before in by_id and b_before != newest else history[1]["run_id"]
        ss["cmp_b"] = newest
        ss[NEWEST_KEY] = newest
    # The choices are run ids (not positions in the list), so the dropdowns, the panels and the legend agree.
    for key, default in (("cmp_a", history[1]), ("cmp_b", history[0])):
        if st.session_state.get(key) not in by_id:  # first time, or that run was dropped from the history
            st.session_state[key] = default["run_id"]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A", list(by_id), format_func=labels.get, key="cmp_a")
    b = c2.selectbox("Run B", list(by_id), format_func=labels.get, key="cmp_b")
    runs = [by_id[a]["run"], by_id[b]["run"]]
    t_hi = max(r.ts[0] for r in runs)
    t = st.slider(
        "Compare at t",
        0,
        max(t_hi, 1),
        value=t_hi // 2,
        key="cmp_t",
        help="Both runs on the same axis: each shows its stored step closest to this t.",
    )
    cols = st.columns(2)
    for col, name, run in zip(cols, ("A", "B"), runs, strict=True):
        f = figure.frame_near_t(run, t)
        p = f", PSNR {run.psnr[f.index]:.1f} dB" if run.psnr is not None else ""
        col.markdown(f"**{name}**: step {f.index + 1} of {run.num_steps}, t = {f.t}")
        inner = col.columns(3)
        inner[0].image(to_picture(f.x_t, DISPLAY_PX), caption=f"x_t, t = {f.t}", width="stretch")
        inner[1].image(to_picture(f.eps_hat, DISPLAY_PX), caption="ε̂", width="stretch")
        inner[2].image(to_picture(f.x0_hat, DISPLAY_PX), caption=f"x̂₀{p}", width="stretch")
    series = {f"A: {labels[a]}": runs[0], f"B: {labels[b]}": runs[1]}
    st.plotly_chart(plots_reverse.compare_chart(series, t), width="stretch")
    st.caption(LOST_ON_RELOAD)


def render_sweep(settings: backend_reverse.SweepSettings, x0: torch.Tensor | None, model: LoadedModel) -> None:
    """The t_start sweep for the current photo (``x0``; None: from pure noise, no sweep), model and sampler settings."""
    st.subheader("How much of your photo survives? A t_start sweep")
    st.markdown(
        "The same reverse process started from t_start = 100, 200, …, 900: one row per start with the noised "
        "photo, the final image and its PSNR against your photo. Somewhere in the middle the final image stops "
        "being your photo and becomes one the model invents."
    )
    if x0 is None:
        st.caption("The sweep needs a photo: choose “Your photo, noised to t_start” above.")
        return
    starts = backend_reverse.sweep_t_starts(model.schedule.T)
    plan = [t for t0 in starts for t in make_timesteps(t0, settings.steps)]  # every start's steps, in turn
    n_total = len(plan)
    est = estimates.trajectory(
        model, settings.resolution, plan, settings.sampler, bool(settings.guidance), record=False
    ).seconds
    pressed = st.button(
        f"Run the sweep ({len(starts)} runs, {plural(n_total, 'step')}, about {est:.0f} s)", key="traj_sweep_go"
    )
    if pressed:
        with progress_bar() as progress:
            rows = backend_reverse.t_start_sweep(_x0=x0, _model=model, _progress=progress, **settings.sweep_args())
        st.session_state["traj_sweep"] = (settings, rows)
    stored = st.session_state.get("traj_sweep")
    if stored is None:
        return
    if stored[0] != settings:
        st.info("The settings changed since this sweep; press the button to sweep them.")
    rows = stored[1]
    head = st.columns([1, 2, 2, 2])
    for c, text in zip(head, ("t_start", "x_t_start: the start", "the final image", "PSNR(final, x₀)"), strict=True):
        c.markdown(f"**{text}**")
    for r in rows:
        c = st.columns([1, 2, 2, 2], vertical_alignment="center")
        c[0].markdown(f"**{r['t_start']}**  \n{plural(r['steps'], 'step')}")
        c[1].image(to_picture(r["start"], 96), width=96)
        c[2].image(to_picture(r["final"], 96), width=96)
        c[3].markdown(f"{r['psnr']:.1f} dB")
    st.plotly_chart(
        plots_reverse.sweep_psnr_chart([r["t_start"] for r in rows], [r["psnr"] for r in rows]), width="stretch"
    )
