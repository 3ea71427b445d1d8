"""Page: three questions students ask about image generators, each answered live (issue 34).

Does it just copy? What does guidance really sample? Can it fix my photo? The page reads its widgets, calls
:mod:`app.compute.questions` and draws with :mod:`app.charts.questions`.
"""

from __future__ import annotations

import streamlit as st

from app.charts import questions as pq
from app.charts.render import DISPLAY_PX, tensor_to_uint8, to_picture
from app.compute import questions as backend_questions
from app.compute import reverse
from app.compute.questions import particle_copies, tilted
from app.session import state, which_model
from app.ui.common import progress_bar, require_image, require_model

QUESTIONS = ("Does it just copy?", "What does guidance really sample?", "Can it fix my photo?")
COPY_STEPS = (10, 25, 50)
SDEDIT_STEPS = 10  # DDIM steps per start of the editing sweep (9 starts, about 90 network calls)
state.set_default("qs_which", QUESTIONS[0])
state.set_default("qs_seed", 0)
state.set_default("qs_copy_steps", 25)
state.set_default("qs_n", 32)
state.set_default("qs_curve", {})
state.set_default("qs_class", tilted.CLASS_NAMES[0])
state.set_default("qs_gamma", 3.0)
state.set_default("qs_x", (30, 70))
state.set_default("qs_y", (30, 70))
state.set_default("qs_sampler", "DDPM")
state.set_default("qs_steps", 25)
state.set_default("qs_resample", 1)
state.set_default("qs_t_edit", 400)

st.title("Questions students ask")
st.markdown(
    "Three questions come up in every class on image generators. Each one has an answer you can watch here: "
    "pick a question."
)
which = st.radio("Question", QUESTIONS, key="qs_which", horizontal=True, persist_state="session")


def pictures_row(items, caption_of) -> None:
    """One row of small pictures: ``items`` are (key, uint8 picture)."""
    cols = st.columns(len(items))
    for col, (key, pic) in zip(cols, items, strict=True):
        col.image(to_picture(pic, DISPLAY_PX // 2), caption=caption_of(key), width="stretch")


# --- 1. does it just copy? --------------------------------------------------------------------------------------
def copy_fashion() -> None:
    st.markdown(
        "A denoiser that is **perfect for its training set** can only give back training images: at every step "
        "its guess x̂₀ is a weighted mean of the training images, and at the end one image wins. Below, that "
        "perfect denoiser for 5,000 Fashion training images and the bundled Fashion network start from the **same "
        "noise**. Watch each one's guess x̂₀ step by step, then each final picture beside its nearest training image."
    )
    c1, c2 = st.columns(2)
    seed = int(c1.number_input("Seed (the start noise)", 0, 2**31 - 1, key="qs_seed", persist_state="session"))
    steps = int(c2.select_slider("Steps", COPY_STEPS, key="qs_copy_steps", persist_state="session"))
    net = backend_questions.fashion_model()
    if net is None:
        st.info("The Fashion generator is not bundled with this copy, so only the exact denoiser runs.")
    with st.spinner("Running both denoisers from the same noise…"):
        run = backend_questions.copy_run(seed, steps, net)
    for name, rows in run["rows"].items():
        st.markdown(f"**{name}**: its guess x̂₀ at step t = …")
        pictures_row(rows, lambda t: f"t = {t}")
    cols = st.columns(len(run["final"]) * 2)
    for i, name in enumerate(run["final"]):
        cols[2 * i].image(to_picture(run["final"][name], DISPLAY_PX // 2), caption=f"{name}: its picture",
                          width="stretch")  # fmt: skip
        cols[2 * i + 1].image(to_picture(run["nearest"][name], DISPLAY_PX // 2),
                              caption=f"nearest training image (distance {run['distance'][name]:.2f})",
                              width="stretch")  # fmt: skip
    st.plotly_chart(pq.copy_distance_figure(run["test_distances"], run["distance"], run["threshold"]))
    median = float(sorted(run["test_distances"])[len(run["test_distances"]) // 2])
    st.markdown(
        f"A real garment the network never saw lies about **{median:.1f}** from its nearest training image "
        f"(the grey bars, 1,000 test images). Below **{run['threshold']:.1f}** a picture counts as a near-copy. "
        "The exact denoiser lands on a training image (distance about 0); a network that creates lands as far "
        "as real new garments do. bench/questions.py counts it over 100 noises."
    )
    st.caption(
        "The exact denoiser knows only this 5,000-image subset of the network's 60,000 (assets/fashion-subset.npz); "
        "a network picture's nearest image among all 60,000 may be a little closer. "
        + " · ".join(f"{k}: {v:.1f} s" for k, v in run["seconds"].items())
    )


def copy_points() -> None:
    st.markdown(
        "The same question on points, where a small network trains in seconds. The exact denoiser of n points "
        "always returns one of them. A small network trained on **few** points learns them by heart; trained on "
        "**many** it fills in the shape between them. Counted: the share of samples within "
        f"{particle_copies.RADIUS:g} of a training point, beside what fresh data reach by chance."
    )
    n = int(st.select_slider("Training points", particle_copies.SIZES, key="qs_n", persist_state="session"))
    trained = st.session_state["qs_curve"].get(n)
    train = trained is not None or st.button("Train the small network on these points (seconds)", key="qs_train")
    with st.spinner("Sampling" + (" and training the small network…" if train else "…")):
        point, samples = backend_questions.points_copy(n, 0, bool(train))
    if point.network is not None:
        st.session_state["qs_curve"][n] = point
    c1, c2, c3 = st.columns(3)
    c1.metric("Exact denoiser: near-copies", f"{point.exact:.0%}")
    c2.metric("Small network: near-copies", "train it" if point.network is None else f"{point.network:.0%}")
    c3.metric("Fresh data (chance)", f"{point.chance:.0%}")
    st.plotly_chart(pq.particles_copy_figure(samples, n))
    curve = list(st.session_state["qs_curve"].values())
    if len(curve) >= 2:
        st.plotly_chart(pq.copy_curve_figure(curve))
    else:
        st.caption("Train at two or more sizes to draw the curve; bench/questions.py prints it for 4 sizes.")


# --- 2. guidance --------------------------------------------------------------------------------------------------
def guidance() -> None:
    st.markdown(
        "Guidance is said to sample a **sharpened class**: $p(x \\mid c)^{\\gamma}\\, p(x)^{1-\\gamma}$, the class c "
        "tilted away from the rest, with γ the guidance strength below. Here the data are two classes of blobs in a "
        "plane, where every score is known exactly, so we can draw that true target (grey lines) and see what "
        "guidance really produces. It does not sample the target: DDIM and DDPM even disagree with each other "
        "(Bradley & Nakkiran 2024)."
    )
    c1, c2 = st.columns([1, 3])
    cls = c1.radio("Class", tilted.CLASS_NAMES, key="qs_class", horizontal=True, persist_state="session")
    gamma = float(c2.slider("Guidance strength (1: no guidance)", 0.0, 8.0, step=0.5, key="qs_gamma",
                            persist_state="session"))  # fmt: skip
    s = tilted.GuidanceSettings(c=tilted.CLASS_NAMES.index(cls), gamma=gamma, n=400)
    with st.spinner("Sampling with exact scores…"):
        result = backend_questions.guidance(s)
    st.plotly_chart(pq.guidance_figure(result))
    st.plotly_chart(pq.guidance_bars(result))
    st.markdown(
        f"**Interval**: guidance only for {s.interval[0]} ≤ t ≤ {s.interval[1]}, the least noisy steps (what the "
        "Fashion generator does). **Autoguidance** (Karras et al. 2024): guide the class away from a *weaker* model "
        f"of the same class (here the class blurred by {s.weak_std:g}) instead of from the unconditional model. "
        "MMD² measures how far two clouds of points are apart; the plain conditional's distance to its own class "
        "(the smallest bar) shows how small it comes out for two samples of the same cloud."
    )


# --- 3. can it fix my photo? --------------------------------------------------------------------------------------
def inpainting(img, model) -> None:
    st.markdown(
        "Cover part of your photo with a rectangle: the model fills it in. At every step the uncovered part is "
        "taken from your photo, noised to that step's level, and only the hole comes from the model "
        "(RePaint, Lugmayr et al. 2022). Choose a photo in the sidebar."
    )
    c1, c2 = st.columns(2)
    xs = c1.slider("Hole, left to right (%)", 0, 100, key="qs_x", persist_state="session")
    ys = c2.slider("Hole, top to bottom (%)", 0, 100, key="qs_y", persist_state="session")
    c3, c4, c5 = st.columns(3)
    sampler = c3.radio("Sampler", ("DDPM", "DDIM"), key="qs_sampler", horizontal=True, persist_state="session")
    steps = int(c4.select_slider("Steps", (10, 25, 50, 100), key="qs_steps", persist_state="session"))
    resample = int(c5.select_slider("Resampling per step", (1, 2, 3, 5), key="qs_resample", persist_state="session",
                                    help="RePaint's jumps back: more agreement between the hole and the rest"))  # fmt: skip
    box = (xs[0] / 100, ys[0] / 100, xs[1] / 100, ys[1] / 100)
    s = backend_questions.InpaintSettings(img.key, img.resolution, which_model.model_key(), box, sampler.lower(), steps,
                                          resample, int(st.session_state["qs_seed"]))  # fmt: skip
    try:
        known = backend_questions.hole(s)
    except ValueError as exc:
        st.warning(str(exc))
        return
    st.image(to_picture(backend_questions.with_hole(img.x0, known), DISPLAY_PX), caption="the hole to fill (grey)")
    stored = st.session_state.get("qs_inpaint")
    if st.button("Fill in the hole", key="qs_fill", type="primary"):
        stored = s
        st.session_state["qs_inpaint"] = s
    if stored != s:
        st.caption("Press **Fill in the hole** to run (a run takes seconds at 64 px).")
        return
    with progress_bar() as progress:
        run = backend_questions.inpaint_run(s, img.x0, model, progress)
    k = len(run["frames"])
    i = st.slider("Step", 1, k, k, key="qs_step") - 1 if k > 1 else 0
    f = run["frames"][i]
    parts = [("x_t", f["x_t"]), ("kept: your photo, noised", f["known"]), ("hole: from the model", f["unknown"]),
             ("x̂₀: the model's guess", f["x0_hat"])]  # fmt: skip
    st.markdown(f"Step {i + 1} of {k}, at t = {f['t']}:")
    pictures_row(parts, lambda name: name)
    c1, c2, c3 = st.columns(3)
    c1.image(to_picture(run["final"], DISPLAY_PX), caption=f"filled in: PSNR in the hole {run['psnr_fill']:.1f} dB")
    c2.image(to_picture(run["blur"], DISPLAY_PX), caption=f"a plain blur fill: {run['psnr_blur']:.1f} dB")
    c3.image(to_picture(tensor_to_uint8(img.x0), DISPLAY_PX), caption="your photo")
    st.caption(f"{k} steps in {run['seconds']:.1f} s. PSNR compares the hole with what was really there.")


def sdedit(img, model) -> None:
    st.markdown(
        "**Editing by noise** (SDEdit, Meng et al. 2022): noise your photo to a level t, then let the model "
        "denoise it back. A little noise and the photo survives; a lot and the model invents a new picture."
    )
    seed = int(st.session_state["qs_seed"])
    key = (img.key, img.resolution, which_model.model_key(), seed)
    if st.button("Noise and denoise back from t = 100, 200, …, 900 (seconds)", key="qs_sweep"):
        st.session_state["qs_sdedit"] = key
    if st.session_state.get("qs_sdedit") != key:
        st.caption(f"One DDIM run of {SDEDIT_STEPS} steps from each t, then the slider moves between them at once.")
        return
    with progress_bar() as progress:
        rows = reverse.t_start_sweep(img.key, img.resolution, which_model.model_key(), "ddim", 0.0, SDEDIT_STEPS,
                                     seed, img.x0, model, _progress=progress)  # fmt: skip
    by_t = {r["t_start"]: r for r in rows}
    if st.session_state["qs_t_edit"] not in by_t:  # a model with fewer timesteps has fewer starts
        st.session_state["qs_t_edit"] = rows[-1]["t_start"]
    t = int(st.select_slider("Noise the photo to t", list(by_t), key="qs_t_edit", persist_state="session"))
    row = by_t[t]
    c1, c2, c3 = st.columns(3)
    c1.image(to_picture(tensor_to_uint8(img.x0), DISPLAY_PX), caption="your photo")
    c2.image(to_picture(row["start"], DISPLAY_PX), caption=f"noised to t = {row['t_start']}")
    c3.image(to_picture(row["final"], DISPLAY_PX), caption=f"denoised back: PSNR {row['psnr']:.1f} dB")
    st.plotly_chart(pq.sdedit_figure(rows, row["t_start"]))


if which == QUESTIONS[0]:
    copy_fashion()
    st.subheader("The same question on points")
    copy_points()
elif which == QUESTIONS[1]:
    guidance()
else:
    model = require_model()
    img = require_image()
    inpainting(img, model)
    st.subheader("Editing: how much of the photo survives?")
    sdedit(img, model)
