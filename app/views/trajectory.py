"""Page: the reverse process, live. Run a sampler once, then scrub through x_t | eps_hat | x0_hat."""

from __future__ import annotations

import math

import streamlit as st

from app import backend_reverse, plots_reverse, state
from app.common import require_image, require_model
from app.render import DISPLAY_PX, NOISE_CAPTION
from model import figure
from model.images import tensor_to_uint8, to_picture
from model.reverse import make_timesteps

PHOTO, NOISE = "Your photo, noised to t_start", "Pure noise (generate)"
RUN_KEY = "traj_run"  # the latest finished run of this session: {"settings": tuple, "run": Run, ...}
MAX_GRID_ROWS = 50

img = require_image()
model = require_model()
T = model.schedule.T
mkey = backend_reverse.model_key()
sec = backend_reverse.seconds_per_step(mkey, img.resolution, model)

for key, value in {
    "traj_source": PHOTO,
    "traj_t_start": min(700, T - 1),
    "traj_sampler": "DDIM",
    "traj_eta": 0.0,
    "traj_steps": backend_reverse.default_steps(sec),  # fewer for big models / resolutions
    "traj_seed": 0,
    "traj_step": 1,
    "traj_every": 5,
}.items():
    state.set_default(key, value)
KEEP = "session"  # persist_state: widget values survive a trip to another page (Streamlit >= 1.67)

st.title("Reverse trajectory: from noise back to a photo")
st.markdown(
    "Each row of the famous figure is one step of the reverse process: the noisy input $x_t$, the noise "
    r"$\hat\epsilon$ the network predicts, and $\hat x_0$, $x_t$ with *all* of $\hat\epsilon$ removed. "
    "The sampler only removes a little of it per step, then asks again: early estimates are blurry, late ones sharp."
)

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
else:
    t_start = T - 1
    c1.info(
        "From pure noise the model **generates**. The bundled model was trained on small random crops of "
        "photos, so it makes photo-like textures, colour blobs and edges — not objects, faces or scenes."
    )
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

n_eff = len(make_timesteps(t_start, steps))
eta_used = float(eta) if sampler == "DDIM" else 0.0
settings = (None if source == NOISE else img.key, img.resolution, mkey, t_start, sampler.lower(), eta_used, n_eff, seed)
est = n_eff * sec
cost = f"{n_eff} steps × {sec * 1000:.0f} ms per step (measured for this model at {img.resolution} px) ≈ {est:.1f} s"
if n_eff < steps:
    cost += f" — only {n_eff} distinct timesteps lie between t_start = {t_start} and 0"
(st.warning if est > backend_reverse.LONG_RUN_SECONDS else st.caption)(f"This run: {cost}.")

if st.button("Run", type="primary", key="traj_go"):
    run = backend_reverse.trajectory(
        settings[0],
        img.resolution,
        mkey,
        t_start,
        sampler.lower(),
        eta_used,
        n_eff,
        seed,
        None if source == NOISE else img.x0,
        model,
    )
    # Only the latest run is kept per session (bounded memory); scrubbing reads it, never recomputes.
    st.session_state[RUN_KEY] = {
        "settings": settings,
        "run": run,
        "source": source,
        "x0": img.x0 if source == PHOTO else None,
    }
    st.session_state["traj_step"] = 1
    st.session_state["traj_every"] = max(1, math.ceil(len(run.frames) / 10))

stored = st.session_state.get(RUN_KEY)
if stored is None:
    st.info("Choose the settings and press **Run**.")
    st.stop()

run: figure.Run = stored["run"]
if stored["settings"] != settings:
    st.info("The settings changed since this run. Below is the previous run; press **Run** to compute the new one.")
s_img, s_res, _, s_t0, s_sampler, s_eta, s_n, s_seed = stored["settings"]
label = (
    f"{s_sampler.upper()}{f' η = {s_eta:g}' if s_sampler == 'ddim' else ''}, {s_n} steps from t = {s_t0}, seed {s_seed}"
)
st.success(f"{label} — {'from the photo' if s_img else 'from pure noise'}, {s_res} px, took {run.seconds:.1f} s.")


# --- scrub: one step, the blog figure's row, live ---------------------------------------
def scrub() -> None:
    k = len(run.frames)
    if st.session_state.get("traj_step", 1) > k:
        st.session_state["traj_step"] = k
    pos = st.slider("Step", 1, k, key="traj_step", persist_state=KEEP) if k > 1 else 1
    f = run.frames[pos - 1]
    stored_note = "" if k == run.num_steps else f" (every {run.kept[1] - run.kept[0]}-th step is stored)"
    t_prev = run.t_prevs[f.index]
    st.markdown(
        f"**Step {f.index + 1} of {run.num_steps}**: t = {f.t} → {t_prev if t_prev >= 0 else 'clean'}{stored_note}"
    )
    cols = st.columns(3)
    cols[0].image(to_picture(f.x_t, DISPLAY_PX), caption=f"x_t, t = {f.t}", width="stretch")
    cols[1].image(to_picture(f.eps_hat, DISPLAY_PX), caption=f"ε̂: predicted noise ({NOISE_CAPTION})", width="stretch")
    p = f", PSNR {run.psnr[f.index]:.1f} dB" if run.psnr is not None else ""
    cols[2].image(to_picture(f.x0_hat, DISPLAY_PX), caption=f"x̂₀: all of ε̂ removed{p}", width="stretch")

    step_nums = list(range(1, run.num_steps + 1))
    charts = st.columns(2 if run.psnr is not None else 1)
    if run.psnr is not None:
        charts[0].plotly_chart(plots_reverse.psnr_chart(step_nums, run.psnr, run.ts, f.index + 1), width="stretch")
    charts[-1].plotly_chart(plots_reverse.eps_norm_chart(step_nums, run.eps_rms, run.ts, f.index + 1), width="stretch")


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

name = f"reverse-{s_sampler}-{s_n}steps-t{s_t0}-seed{s_seed}"
d1, d2 = st.columns(2)
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
st.caption("The same pictures as `python -m model.figure IMAGE ... --out figure.png --gif anim.gif` makes.")
