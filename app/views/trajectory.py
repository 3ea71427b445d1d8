"""Page: the reverse process, live. Run a sampler once, then scrub through x_t | eps_hat | x0_hat."""

from __future__ import annotations

import math
import time

import streamlit as st

from app.charts.render import DISPLAY_PX, NOISE_CAPTION, plural, tensor_to_uint8, to_picture
from app.compute import estimates
from app.compute import reverse as backend_reverse
from app.compute.reverse import (
    default_guidance,
    figure,
    guidance_help,
    hub,
    make_timesteps,
    slide,
    suggested_steps,
)
from app.session import state, urlstate, which_model
from app.ui import compare, frequency, present, reveal, run_parts
from app.ui.common import progress_bar, require_image, require_model

PHOTO, NOISE = "Your photo, noised to t_start", "Pure noise (generate)"
RUN_KEY = "traj_run"  # the latest finished run of this session: {"settings": TrajectorySettings, "run": Run, ...}
MAX_GRID_ROWS = 50
# From t_start = 700 every photo ended in a blob (issue 17): ~300 keeps enough of the photo to recover it.
DEFAULT_T_START = 300

# The settings are drawn before the image is read: while an upload is on its way there is no image and the
# page stops, and a widget that disappears and comes back showed its default (t = 0) in the browser while
# the pictures kept the old t (issue 17).
model = require_model()
res = int(st.session_state["resolution"])
T = model.schedule.T
mkey = which_model.model_key()
sec = backend_reverse.seconds_per_step(model, res)  # for the default step count
NO_LABEL = "no label (unconditional)"
substituted = False  # True when pure noise is generated with the Fashion generator instead of the photo model

for key, value in {
    "traj_source": PHOTO,
    "traj_t_start": min(DEFAULT_T_START, T - 1),
    "traj_sampler": "DDIM",
    "traj_eta": 0.0,
    "traj_steps": suggested_steps(sec),  # the sidebar's suggestion: fewer for big models / resolutions
    "traj_seed": 0,
    "traj_step": 1,
    "traj_every": 5,
    "traj_photo_model_anyway": False,
}.items():
    state.set_default(key, value)


KEEP = "session"  # persist_state: widget values survive a trip to another page (Streamlit >= 1.67)

st.title("Reverse trajectory: from noise back to a photo")
st.markdown(
    "Start from pure noise, or from your photo with noise added, and let the network clean it up a little at a "
    "time. At every step it guesses the whole noise; the sampler removes only a little of it, then asks again. "
    "Press **Run**, then step through the run: each step shows three pictures side by side, the noisy input "
    "x_t, the noise the network predicts (ε̂) and its guess of the clean picture (x̂₀: all of ε̂ removed), like "
    "each row of the figure of the whole run further down this page. Early guesses are blurry, late ones sharp."
)
# In presentation mode the finished run's step row (slider and pictures) is drawn here, above the settings, so it
# fits the projector's one screen (issue 26); elsewhere it comes after them, in the order one works.
stage = st.container() if present.on() else None

# --- settings ------------------------------------------------------------------------
c1, c2, c3 = st.columns([2, 2, 1])
source = c1.radio("Start from", [PHOTO, NOISE], key="traj_source", persist_state=KEEP)
if source == PHOTO:
    if st.session_state["traj_t_start"] > T - 1:
        st.session_state["traj_t_start"] = T - 1
    t_start = c1.slider(
        "t_start",
        0,
        T - 1,
        key="traj_t_start",
        persist_state=KEEP,
        help="How far the photo is noised before we go back.",
    )
    c1.caption(
        "From a small t_start the model recovers your photo; from a high one so little of it is left that the "
        "model invents a new photo instead."
    )
else:
    t_start = T - 1
    if which_model.generates_with_fashion(model, photo_model_anyway=False):
        anyway = c1.checkbox("Use the photo model anyway", key="traj_photo_model_anyway", persist_state=KEEP)
        if which_model.generates_with_fashion(model, anyway):
            c1.info(
                "From pure noise we **generate** with the **Fashion generator**: the bundled photo model learned "
                "from small crops of 156 photos, so from noise it only makes smears. The Fashion generator learned "
                "60,000 garments in 10 classes, so a class appears out of the noise."
            )
            model = which_model.fashion_generator()
            mkey, T, substituted = "fashion", model.schedule.T, True
        else:
            c1.info(
                "From pure noise the photo model **generates** photo-like textures, colour blobs and edges — not "
                "objects, faces or scenes: it learned from small random crops of photos."
            )
    elif not model.conditional:
        c1.info("From pure noise the model **generates** a new image of the kind it was trained on.")
# the resolution of the run: generation with a substituted model runs at that model's own size
run_res = model.resolution if substituted else res
label, guidance = None, 0.0
if model.conditional:
    g1, g2 = st.columns([1, 2])
    names = list(model.classes) + ([NO_LABEL] if model.null_label is not None else [])
    state.set_default("traj_class", names[0])
    if st.session_state["traj_class"] not in names:
        st.session_state["traj_class"] = names[0]
    choice = g1.selectbox("Class y", names, key="traj_class", persist_state=KEEP, help="The class to generate.")
    label = None if choice == NO_LABEL else names.index(choice)
    if model.guidable:
        w_card = default_guidance(model)  # what the model's card recommends: a newcomer sees the model at its best
        state.set_default("traj_guidance", w_card)
        g2.markdown(
            "**Guidance** makes the class clearer: the network guesses the noise twice, once told the class and once "
            "with no label, and the sampler steps further in the direction where the two differ."
        )
        guidance = g2.slider(
            "Guidance scale w",
            0.0,
            8.0,
            step=0.5,
            key="traj_guidance",
            persist_state=KEEP,
            disabled=label is None,
            help=guidance_help(model),
        )
        guidance = float(guidance) if label is not None else 0.0
        g2.button(
            "No guidance (w = 0)", key="traj_w0", on_click=run_parts.no_guidance,
            disabled=label is None or guidance == 0, help="The plain conditional model, for comparison.",
        )  # fmt: skip
        g2.caption(run_parts.guidance_default_note(model, w_card))
        yname = rf"\text{{{choice}}}" if label is not None else "y"
        g2.latex(  # two short lines, so the formula fits a narrow column and a phone
            r"\begin{aligned}\tilde\epsilon &= \hat\epsilon(x_t, y) + w\,(\hat\epsilon(x_t, y) - \hat\epsilon(x_t, \varnothing))"
            rf"\\ &= {1 + guidance:g}\,\hat\epsilon(x_t, {yname}) - {guidance:g}\,\hat\epsilon(x_t, \varnothing)\end{{aligned}}"
        )
        if model.source == str(hub.FASHION_MODEL) or mkey == "fashion":  # asked where guidance is on screen
            reveal.guidance_question(choice)  # predict, then reveal (app/ui/reveal.py)
sampler = c2.radio("Sampler", ["DDIM", "DDPM"], key="traj_sampler", persist_state=KEEP, horizontal=True)
eta = c2.slider(
    "DDIM η",
    0.0,
    1.0,
    step=0.1,
    key="traj_eta",
    persist_state=KEEP,
    disabled=sampler != "DDIM",
    help="0: deterministic DDIM; 1: as random as DDPM.",
)
steps = c2.slider(
    "Steps", 10, 1000, key="traj_steps", persist_state=KEEP, help="Number of reverse steps (network calls)."
)
seed = int(c3.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="traj_seed", persist_state=KEEP))

img = require_image()
n_eff = len(make_timesteps(t_start, steps))
eta_used = float(eta) if sampler == "DDIM" else 0.0
settings = backend_reverse.TrajectorySettings(
    image_key=None if source == NOISE else img.key,
    resolution=run_res,
    model_key=mkey,
    t_start=t_start,
    sampler=sampler.lower(),
    eta=eta_used,
    steps=n_eff,
    seed=seed,
    label=label,
    guidance=guidance,
)
# measured for this model at this size and batch (guidance: both predictions in one doubled batch), plus the loop
run_est = estimates.trajectory(model, run_res, make_timesteps(t_start, steps), sampler, bool(guidance))
est = run_est.seconds
per = f"{run_est.per_pass() * 1000:.0f} ms per step" + (" (both predictions in one pass)" if guidance else "")
cost = f"{plural(n_eff, 'step')} × {per} (measured for this model at {run_res} px) ≈ {est:.1f} s"
if n_eff < steps:
    cost += f" — only {plural(n_eff, 'distinct timestep')} {'lies' if n_eff == 1 else 'lie'} between t_start = {t_start} and 0"
(st.warning if est > backend_reverse.LONG_RUN_SECONDS else st.caption)(f"This run: {cost}.")

x0_run = None if source == NOISE else img.x0  # require_image already matches the model's channels
go = st.button("Run", type="primary", key="traj_go")
autorun_step = st.session_state.pop(urlstate.AUTORUN_KEY, None)  # a link with run=1: run its settings once
if autorun_step is not None and not go:
    if est <= backend_reverse.LONG_RUN_SECONDS:
        go = True
    else:
        st.info(f"The link comes with a finished run, which would take about {est:.0f} s here: press **Run**.")
if go:
    with progress_bar() as progress:
        run, parts = backend_reverse.trajectory(
            _x0=x0_run, _model=model, _progress=progress, **settings.trajectory_args()
        )
    # Only the latest run is kept per session (bounded memory); scrubbing reads it, never recomputes.
    st.session_state[RUN_KEY] = {
        "settings": settings,
        "run": run,
        "parts": parts,
        "classes": model.classes,
        "source": source,
        "x0": img.x0 if source == PHOTO else None,
    }
    compare.remember(st.session_state[RUN_KEY])  # the last few runs, for "Compare two runs"
    # the step slider opens on the result (the last step), not on step 1's pure noise; a link names its own step
    st.session_state["traj_step"] = min(int(autorun_step or len(run.frames)), len(run.frames))
    st.session_state["traj_every"] = max(1, math.ceil(len(run.frames) / 10))

if model.conditional and model.guidable:
    st.subheader("One of each class")
    st.caption(
        f"All {len(model.classes)} classes in one batch from pure noise, with the guidance, sampler, steps and seed "
        "above (the conditional and unconditional passes are batched together)."
    )
    if st.button("Generate one of each class", key="traj_each"):
        w_each = float(st.session_state.get("traj_guidance", default_guidance(model)))
        with progress_bar() as progress:
            each_run = backend_reverse.one_of_each(
                mkey, w_each, sampler.lower(), eta_used, steps, seed, model, progress
            )
        st.session_state["traj_each_run"] = (
            each_run,
            model.classes,
            w_each,
        )
    each = st.session_state.get("traj_each_run")
    if each is not None:
        res_each, classes_each, w_each = each
        cols = st.columns(len(classes_each))
        for c, name, pic in zip(cols, classes_each, res_each["final"], strict=True):
            c.image(to_picture(pic, 96), caption=name, width="stretch")
        st.caption(f"w = {w_each:g}, {len(res_each['rows'])} of the steps below; took {res_each['seconds']:.1f} s.")
        with st.expander("How each one emerged: x̂₀ at evenly spaced steps (rows) for every class (columns)"):
            for t_row, pics in res_each["rows"]:
                cols = st.columns(len(pics))
                for c, pic in zip(cols, pics, strict=True):
                    c.image(to_picture(pic, 64), width="stretch")
                st.caption(f"t = {t_row}")

stored = st.session_state.get(RUN_KEY)
# the address carries run=1 (and the step) only while the run shown is the one of the settings shown
st.session_state[urlstate.LINK_RUN_KEY] = stored is not None and stored["settings"] == settings
sweep_settings = settings.sweep(steps)  # the slider's steps per start, not the run's (cut at t_start)
if stored is None:
    left, right = st.columns([1, 3])
    start = "pure noise" if x0_run is None else f"your photo noised to t = {t_start}"
    left.image(to_picture(backend_reverse.start_picture(settings, x0_run, model), DISPLAY_PX), width="stretch",
               caption=f"Where the run starts: x_{{t_start}}, {start}")  # fmt: skip
    right.info("Choose the settings and press **Run**: the network cleans this picture up step by step.")
    compare.render_sweep(sweep_settings, x0_run, model)
    st.stop()

run: figure.Run = stored["run"]
if stored["settings"] != settings:
    st.info("The settings changed since this run. Below is the previous run; press **Run** to compute the new one.")
s: backend_reverse.TrajectorySettings = stored["settings"]
title = f"{s.sampler.upper()}{f' η = {s.eta:g}' if s.sampler == 'ddim' else ''}, {plural(s.steps, 'step')} from t = {s.t_start}, seed {s.seed}"
if s.label is not None:
    title += f", class {stored['classes'][s.label]}, guidance w = {s.guidance:g}"
st.success(
    f"{title} — {'from the photo' if s.image_key else 'from pure noise'}, {s.model_key} model, {s.resolution} px, took {run.seconds:.1f} s."
)


# --- scrub: one step, the blog figure's row, live ---------------------------------------
# Play shows one frame per rerun, and sets the step slider to it before the slider is drawn, so the slider follows
# the pictures (one long loop inside a run could only move the pictures: a drawn widget cannot be changed).
PLAYING = "traj_playing"  # the steps a Play has still to show, first one next


def scrub() -> None:
    k = len(run.frames)
    queue = st.session_state.get(PLAYING) or []
    if queue:
        st.session_state["traj_step"] = queue[0]
    if st.session_state.get("traj_step", 1) > k:
        st.session_state["traj_step"] = k
    if k > 1:
        s1, s2 = st.columns([5, 1])
        pos = s1.slider("Step", 1, k, key="traj_step", persist_state=KEEP)
        play = s2.button("Play", key="traj_play", icon=":material/play_arrow:", help="Steps through the run.")
    else:
        pos, play = 1, False
    stored_note = "" if k == run.num_steps else f" (every {run.kept[1] - run.kept[0]}-th step is stored)"
    label_slot = st.empty()
    cols = st.container(key="pics_traj").columns(3)  # "pics_": stays one row on a phone
    slots = [c.empty() for c in cols]

    def show(i: int) -> None:
        f = run.frames[i]
        t_prev = run.t_prevs[f.index]
        label_slot.markdown(
            f"**Step {f.index + 1} of {run.num_steps}**: t = {f.t} → {t_prev if t_prev >= 0 else 'clean'}{stored_note}"
        )
        slots[0].image(to_picture(f.x_t, DISPLAY_PX), caption=f"x_t, t = {f.t}", width="stretch")
        slots[1].image(
            to_picture(f.eps_hat, DISPLAY_PX), caption=f"ε̂: predicted noise ({NOISE_CAPTION})", width="stretch"
        )
        p = f", PSNR {run.psnr[f.index]:.1f} dB" if run.psnr is not None else ""
        slots[2].image(to_picture(f.x0_hat, DISPLAY_PX), caption=f"x̂₀: all of ε̂ removed{p}", width="stretch")

    show(pos - 1)
    if play:  # from the first step to the last, then the slider stays on the last one
        st.session_state[PLAYING] = present.frames(1, k)
        st.session_state["traj_played"] = []
        st.rerun()
    if queue:
        st.session_state.setdefault("traj_played", []).append(pos)  # what the animation showed (read by the tests)
        st.session_state[PLAYING] = queue[1:]
        if queue[1:]:
            time.sleep(present.FRAME_SECONDS)
            st.rerun()
    f = run.frames[pos - 1]
    run_parts.guidance_parts(stored, f, pos, model)
    run_parts.step_charts(run, f)
    frequency.trajectory_section(stored, f, model.schedule)  # issue 27: x0_hat's spectrum (app/ui/frequency.py)


if stage is not None:
    with stage:
        scrub()
else:
    scrub()

st.subheader("Result")
r1, r2, _ = st.columns([1, 1, 2])
if stored["x0"] is not None:
    r1.image(to_picture(tensor_to_uint8(stored["x0"]), DISPLAY_PX), caption="x₀: the photo", width="stretch")
r2.image(to_picture(run.final, DISPLAY_PX), caption="the sample after the last step", width="stretch")

# --- grid and downloads ----------------------------------------------------------------
st.subheader("The whole run as a figure")
k_frames = len(run.frames)
k_min = max(1, math.ceil(k_frames / MAX_GRID_ROWS))
if k_frames > 1:
    if st.session_state["traj_every"] < k_min or st.session_state["traj_every"] > k_frames:
        st.session_state["traj_every"] = max(k_min, min(k_frames, st.session_state["traj_every"]))
    every = st.slider("Show every k-th step", k_min, k_frames, key="traj_every", persist_state=KEEP)
else:
    every = 1
rows = figure.every_kth(k_frames, every)
grids = stored.setdefault("grids", {})
if every not in grids:
    grids.clear()  # keep one grid PNG per session
    grids[every] = figure.png_bytes(figure.grid_image(run.frames, indices=rows))
grid_png = grids[every]
st.image(grid_png, caption=f"{len(rows)} rows: x_t | ε̂ | x̂₀", width="content")

name = f"reverse-{s.sampler}-{s.steps}steps-t{s.t_start}-seed{s.seed}"
slide_title = (
    f"{title} · {'from the photo' if s.image_key else 'from pure noise'}, {s.model_key} model, {s.resolution} px"
)
d1, d2, d3 = st.columns(3)
d1.download_button(
    "Download the grid (PNG)", grid_png, file_name=f"{name}.png", mime="image/png", on_click="ignore", key="traj_dl_png"
)
d2.download_button(
    "Download the animation (GIF)",
    lambda: figure.gif_bytes(run.frames),  # built only when clicked
    file_name=f"{name}.gif",
    mime="image/gif",
    on_click="ignore",
    key="traj_dl_gif",
)
transposed = d3.toggle("Slide: steps as columns", key="traj_slide_t", persist_state=KEEP)
d3.download_button(
    "Download a 16:9 slide (PNG)",
    lambda: figure.png_bytes(  # built only when clicked
        slide.slide_image(run.frames, slide_title, rows=8 if transposed else 5, transposed=transposed)
    ),
    file_name=f"{name}-slide{'-columns' if transposed else ''}.png",
    mime="image/png",
    on_click="ignore",
    key="traj_dl_slide",
    help="1920 × 1080 px: a title line with the settings, panels labelled x_t, ε̂, x̂₀.",
)
st.caption("The same pictures as `python -m model.figure IMAGE ... --out figure.png --gif anim.gif` makes.")

compare.render_compare()
compare.render_sweep(sweep_settings, x0_run, model)
