"""Page: one denoising step at t, on the current image: eps_hat vs the true eps, and the x_0 estimate."""

from __future__ import annotations

import streamlit as st

from app.charts.render import NOISE_CAPTION, noise_picture, picture
from app.compute import core, reverse
from app.server import admission
from app.session import state, urlstate, which_model
from app.ui import figures, pictures, reveal
from app.ui.common import progressive, require_image, require_model

state.set_default("den_t", 500)
state.set_default("den_seed", 0)

st.title("Denoise one step: the network predicts the entire noise")
st.markdown(
    "The network does not output a slightly cleaner picture: shown a noisy picture, it guesses the **entire** "
    "noise that was mixed in. Take all of that guess away at once and you get its estimate of the clean photo, "
    'called x̂₀ ("x-zero-hat"). How good is that estimate? First make a guess, then look.'
)
# Said after the question and the sweep that answer it (issue 36: a question comes before its answer).
LESSON = (
    "At large t the photo is buried, so $\\hat x_0$ is a blurry guess; at small t it is sharp — which is why a "
    "sampler removes only a little of $\\hat\\epsilon$ per step and then asks the network again."
)

PAGE = "denoise"  # this page's name in the address (app/session/urlstate.py)


def settings(model) -> tuple[int, int, int | None]:
    """The page's widgets: t, the seed and (for a class-conditional model) the class index or None."""
    T = model.schedule.T
    state.follow_shared("t", "den_t", hi=T - 1)
    state.follow_shared("seed", "den_seed")
    if st.session_state["den_t"] > T - 1:
        st.session_state["den_t"] = T - 1

    c1, c2 = st.columns([4, 1])
    t = c1.slider(
        "Timestep t",
        0,
        T - 1,
        key="den_t",
        persist_state="session",
        help="t = 0 is the first noising step, t = T − 1 the last.",
    )
    seed = int(
        c2.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="den_seed", persist_state="session")
    )
    state.publish_shared("t", "den_t", t)
    state.publish_shared("seed", "den_seed", seed)
    label = None
    if model.conditional:  # the class y is an input of the network, beside x_t and t
        names = list(model.classes) + (["no label (∅)"] if model.null_label is not None else [])
        state.set_default("den_class", names[0])
        if st.session_state["den_class"] not in names:
            st.session_state["den_class"] = names[0]
        choice = c1.selectbox(
            "Class y given to the network",
            names,
            key="den_class",
            persist_state="session",
            help="A class-conditional network predicts ε̂ = ε_θ(x_t, t, y). Try the right class, a wrong one and none.",
        )
        label = None if choice not in model.classes else names.index(choice)
    return t, seed, label


def show_input(img, model, mkey: str, t: int, seed: int):
    """The first two pictures, x_t and the true noise: drawn before the network runs (no pass needed), so a slider
    step shows its input at once. Returns the row's two columns left for :func:`show_step`."""
    n = reverse.noised_at(img.key, img.resolution, mkey, t, seed, img.x0, model)
    st.subheader(f"What the network sees and what it predicts, at t = {t}")
    cols = st.container(key="pics_den").columns(4)  # "pics_": stays one row on a phone
    cols[0].image(picture(n["x_t"]), caption=f"x_t: the input at t = {t}", width="stretch")
    cols[1].image(
        pictures.noise("denoise", img.key, img.resolution, seed, n["eps"]), caption="ε: the true noise", width="stretch"
    )
    return cols[2:]


def show_step(img, model, cols, r: dict, t: int, seed: int) -> None:
    """The network's pictures (in ``cols``, the row :func:`show_input` began), the formula and the metrics at t."""
    ab = float(model.schedule.alpha_bar[t])
    eps_name = "ε̂ = ε_θ(x_t, t, y)" if model.conditional else "ε̂ = ε_θ(x_t, t)"
    cols[0].image(noise_picture(r["eps_hat"]), caption=f"{eps_name}: the predicted noise", width="stretch")
    cols[1].image(
        noise_picture(r["eps_hat"] - r["eps"]),
        caption=f"ε̂ − ε: the error, MSE = {r['mse']:.4f}",
        width="stretch",
    )
    st.caption(f"Every noise panel uses the same scale: {NOISE_CAPTION}.")

    st.subheader("Remove all of the predicted noise")
    a, b, c = st.columns([1, 1, 2])
    a.image(pictures.photo(img.key, img.resolution, img.x0), caption="x₀: the clean photo", width="stretch")
    b.image(picture(r["x0_hat"]), caption=f"x̂₀: the estimate, PSNR {r['psnr']:.1f} dB", width="stretch")
    with c:
        st.latex(  # x_t stays a symbol: at t = 0, "x_0" would read as the clean photo; two lines fit a phone
            r"\begin{aligned} \hat x_0 &= \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon}{\sqrt{\bar\alpha_t}} \\"
            rf" &= \frac{{x_t - {(1 - ab) ** 0.5:.3f}\,\hat\epsilon}}{{{ab**0.5:.3f}}} \qquad (t = {t}) \end{{aligned}}"
        )
        st.metric("ε-MSE  mean (ε̂ − ε)²", f"{r['mse']:.4f}")
        st.metric("PSNR(x̂₀, x₀)", f"{r['psnr']:.1f} dB")
        st.caption(
            "At small t the noise is faint, so it is hard to pin down (higher ε-MSE), but it is also multiplied by "
            "a small √(1−ᾱ_t): the estimate is still sharp. At large t a small ε error is divided by a tiny √ᾱ_t."
        )


def show_sweep(img, model, mkey: str, r: dict, t: int, seed: int, label: int | None) -> None:
    """The sweep chart across all of t, coarse points first, with the current t marked; on a busy server the rest
    of the points wait for a quiet moment (app.compute.core.sweep_steps, app.server.admission.idle)."""
    st.subheader("The same step across all of t")
    # chunk by chunk, after the pictures: the chart fills in, and a t step during the sweep keeps the chunks done
    sweep_box = st.empty()
    draws = [0]  # a key per draw: no duplicate element ids

    def draw(sw: dict, running: bool) -> None:
        draws[0] += 1
        with sweep_box.container():
            chart = figures.sweep_chart(tuple(sw["ts"]), tuple(sw["mse"]), tuple(sw["psnr"]), t, (r["mse"], r["psnr"]))
            st.plotly_chart(chart, width="stretch", key=f"den_sweep_{draws[0]}")
            if running:
                st.progress(sw["done"] / sw["of"], text=f"Sweeping t: {sw['done']}/{sw['of']}")
            elif sw["done"] < sw["of"]:
                st.caption(
                    f"{sw['done']} of {sw['of']} values of t so far: the server is busy with other students, so the "
                    "rest are filled in at a quieter moment (move t to go on). The same noise ε (seed "
                    f"{seed}) at each; the dashed line is the current t."
                )
            else:
                st.caption(
                    f"{len(sw['ts'])} values of t, the same noise ε (seed {seed}) at each; computed once per image, "
                    "resolution, model and seed. The dashed line is the current t."
                )

    last: list[dict] = []

    def tap(items):
        for item in items:
            last[:] = [item]
            yield item

    shown = None
    sweep = core.sweep_steps(img.key, img.resolution, mkey, seed, img.x0, model, label, refine=admission.idle)
    for sw in progressive(tap(sweep)):
        draw(sw, running=sw["done"] < sw["of"])
        shown = sw
    if last and (shown is not last[0] or last[0]["done"] < last[0]["of"]):
        draw(last[0], running=False)
    st.markdown(LESSON)


# Everything below the introduction depends on t, so it is one fragment: moving t (or any setting of this page)
# reruns only this function, not the entry's sidebar and page shell (issue 20: a classroom's slider steps).
# A fragment rerun skips the entry, so the fragment writes the address itself.
@st.fragment
def settings_and_pictures() -> None:
    # The settings are drawn before the image is read: while an upload is on its way there is no image and the
    # page stops, and a widget that disappears and comes back showed its default (t = 0) in the browser while
    # the pictures kept the old t (issue 17).
    model = require_model()
    # The question comes first, above the pictures, the sweep and the sentence that answer it; it is drawn once
    # the settings it depends on are read.
    question = st.container()
    t, seed, label = settings(model)
    urlstate.write(PAGE)
    img = require_image()
    mkey = which_model.model_key()
    cols = show_input(img, model, mkey, t, seed)  # x_t at once; then the network's pass
    r = reverse.denoise_at(img.key, img.resolution, mkey, t, seed, img.x0, model, label)
    show_step(img, model, cols, r, t, seed)
    with question:
        reveal.denoise_question(img, model, mkey, seed, label)  # predict, then reveal (app/ui/reveal.py)
    show_sweep(img, model, mkey, r, t, seed, label)


settings_and_pictures()
