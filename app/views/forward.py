"""Page: the forward process q, closed form and Markov chain, on the current image."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from app.charts import plots
from app.charts.render import NOISE_CAPTION, picture, plural
from app.compute import core
from app.session import state, urlstate
from app.ui import figures, frequency, pictures, present, reveal
from app.ui.common import require_image

NOISE_ONLY_SNR = 0.01  # below this signal-to-noise ratio x_t is shown as almost pure noise

st.title("Forward process: drowning a photo in noise")
st.markdown(
    "Add a little random noise to a photo, then a little more, again and again: after a few hundred steps the "
    "photo is hard to see, and after 1000 it is gone. Drag the timestep t to see the photo after any number of "
    "steps."
)
# The formulas come after the first pictures (the Start-here rule: a sentence and a picture before any formula).
THE_MATHS = (
    "Each step of the forward process adds a little Gaussian noise: "
    r"$q(x_t \mid x_{t-1}) = \mathcal{N}\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big)$. "
    "Chained, the steps form a *Markov chain* (each step depends only on the one before): "
    r"$q(x_{1:T} \mid x_0) = \prod_t q(x_t \mid x_{t-1})$. "
    "Because a sum of Gaussian noises is again Gaussian (the *reparametrisation*: write the noise as a scale "
    "times one standard draw ε), you can jump straight to any step:"
)

PAGE = "forward"  # this page's name in the address (app/session/urlstate.py)


def show_formula(schedule, tt: int) -> None:
    a, b = float(schedule.sqrt_alpha_bar[tt]), float(schedule.sqrt_one_minus_alpha_bar[tt])
    # The symbols keep t (with t = 0, "x_0 = ... x_0" would clash: index 0 is the first noising step, not the photo).
    st.latex(  # two lines, each short enough for a phone
        r"\begin{aligned} x_t &= \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon \\"
        rf" &= {a:.3f}\,x_0 + {b:.3f}\,\epsilon \qquad (t = {tt}) \end{{aligned}}"
    )


# Play shows one frame per rerun, and sets the t slider to it before the slider is drawn, so the slider follows the
# pictures (one loop inside a run could only move the pictures: a drawn widget cannot be changed; the slider stayed
# at 500 while the caption said t = 564). Reverse trajectory's Play does the same.
PLAYING = "fwd_playing"  # the t a Play has still to show, first one next


def play_next() -> None:
    """Before the slider is drawn: during a Play, the slider takes the next frame's t."""
    queue = st.session_state.get(PLAYING) or []
    if queue:
        st.session_state["fwd_t"] = queue[0]


def play_advance(t: int, pressed: bool) -> None:
    """After the pictures of t are drawn: start a Play (``pressed``) or go on to its next frame (a full rerun)."""
    if pressed:
        st.session_state[PLAYING] = present.frames(0, 999)
        st.session_state["fwd_played"] = []  # what the animation showed (read by the tests)
        st.rerun()
    queue = st.session_state.get(PLAYING) or []
    if not queue:
        return
    st.session_state.setdefault("fwd_played", []).append(t)
    st.session_state[PLAYING] = queue[1:]
    if queue[1:]:
        time.sleep(present.FRAME_SECONDS)
        st.rerun()


# Everything below the introduction depends on t, so it is one fragment: moving t (or any setting of this page)
# reruns only this function, not the entry's sidebar and page shell (issue 20: a classroom's slider steps).
# A fragment rerun skips the entry, so the fragment writes the address itself.
@st.fragment
def settings_and_pictures() -> None:
    # The settings are drawn before the image is read: while an upload is on its way there is no image and the
    # page stops, and a widget that disappears and comes back showed its default (t = 0) in the browser while
    # the pictures kept the old t (issue 17).
    state.follow_shared("t", "fwd_t", hi=999)
    state.follow_shared("seed", "fwd_seed")
    play_next()
    c1, c2, c3 = st.columns([3, 1, 1])
    t = c1.slider(
        "Timestep t",
        0,
        999,
        key="fwd_t",
        persist_state="session",
        help="t = 0 is the first noising step, t = T − 1 = 999 the last.",
    )
    schedule_name = c2.radio(
        "Schedule", ["linear", "cosine"], key="fwd_schedule", persist_state="session", horizontal=True
    )
    seed = int(
        c3.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="fwd_seed", persist_state="session")
    )
    state.publish_shared("t", "fwd_t", t)
    state.publish_shared("seed", "fwd_seed", seed)
    played = c1.button(
        "Play: t from 0 to 999",
        key="fwd_play",
        icon=":material/play_arrow:",
        help="Animates x_t and the formula through t.",
    )
    urlstate.write(PAGE)

    question = st.container()  # first, above the pictures and the chart that answer it; drawn once x_0 is read
    img = require_image()
    schedule = core.schedule(schedule_name)
    x_t, eps = core.forward_jump(img.key, img.resolution, schedule_name, t, seed, img.x0)

    cols = st.container(key="pics_fwd").columns(3)  # "pics_": stays one row on a phone
    cols[0].image(pictures.photo(img.key, img.resolution, img.x0), caption="x₀ — the clean photo", width="stretch")
    cols[1].image(
        pictures.noise("forward", img.key, img.resolution, seed, eps),
        caption=f"ε ~ N(0, I) — the noise ({NOISE_CAPTION})",
        width="stretch",
    )
    cols[2].image(picture(x_t), caption=f"x_t at t = {t}", width="stretch")
    st.markdown(THE_MATHS)
    show_formula(schedule, t)
    play_advance(t, played)
    snr = schedule_captions(schedule, schedule_name, t)
    frequency.forward_section(img, schedule, t, x_t)  # issue 27: the spectrum of x_t (app/ui/frequency.py)
    markov_chain(img, schedule, schedule_name, t, seed, x_t, snr)
    with question:
        reveal.forward_question(img, schedule_name, seed)  # predict, then reveal (app/ui/reveal.py)


def schedule_captions(schedule, schedule_name: str, t: int) -> float:
    """The captions about t and the schedule chart; the signal-to-noise ratio at t."""
    if t == 0:
        st.caption(
            "t = 0 is the first noising step (the diffusers index), so x_t at t = 0 is the photo after one step of "
            f"noise, with ᾱ₀ = 1 − β₀ = {float(schedule.alpha_bar[0]):.5f}; the photo itself is x₀."
        )
    snr = float(schedule.snr[t])
    st.caption(
        f"ᾱ_t = {float(schedule.alpha_bar[t]):.5f}, β_t = {float(schedule.betas[t]):.5f}, "
        f"signal-to-noise ratio ᾱ/(1−ᾱ) = {snr:.4g}. "
        + ("The photo still dominates." if snr > 1 else "The noise now dominates the photo.")
    )
    st.plotly_chart(figures.schedule_chart(schedule_name, t), width="stretch")
    return snr


def markov_chain(img, schedule, schedule_name: str, t: int, seed: int, x_t, snr: float) -> None:
    """The chain run step by step beside the one-jump x_t, when its toggle is on."""
    sab, s1ab = float(schedule.sqrt_alpha_bar[t]), float(schedule.sqrt_one_minus_alpha_bar[t])
    st.subheader("Step by step, or in one jump?")
    st.markdown(
        f"Running the chain $q(x_s \\mid x_{{s-1}})$ one link at a time, {plural(t + 1, 'time')}, gives a different "
        "picture (different random draws) but the **same distribution** as the one-jump formula above."
    )
    if not st.toggle(
        "Run the Markov chain step by step",
        key="fwd_chain",
        persist_state="session",
        help="Runs t + 1 noising steps each time t changes: snapshots along the chain, both endpoints and their "
        "pixel statistics. Off by default to keep the slider fast for a whole classroom.",
    ):
        return
    with st.spinner(f"Running the Markov chain for {plural(t + 1, 'step')}…"):
        x_chain, snaps = core.forward_chain(img.key, img.resolution, schedule_name, t, seed, 6, img.x0)
    st.image(
        [picture(x, 128) for _, x in snaps],
        caption=[f"chain, step s = {s}" for s, _ in snaps],
        width=128,
    )
    a, b = st.columns(2)
    a.image(picture(x_chain), caption=f"x_t by {plural(t + 1, 'chain step')}", width="stretch")
    b.image(picture(x_t), caption="x_t in one jump (closed form)", width="stretch")

    # The noise part of each x_t, standardised: (x_t - sqrt(ab) x0) / sqrt(1 - ab) should be N(0, 1) for both.
    z_chain = ((x_chain - sab * img.x0) / s1ab).numpy().ravel()
    z_jump = ((x_t - sab * img.x0) / s1ab).numpy().ravel()
    # x_t itself is "almost pure N(0, 1)" only when the photo's share is tiny: decided by the SNR, not by t
    # (at t = 505 the cosine schedule still has SNR 0.94).
    noise_only = snr < NOISE_ONLY_SNR
    if noise_only:
        hist = plots.histogram_chart(
            {"chain x_t": x_chain.numpy().ravel(), "one-jump x_t": x_t.numpy().ravel()},
            title="Pixel values of x_t: step by step vs one jump",
        )
    else:
        hist = plots.histogram_chart(
            {"chain": z_chain, "one jump": z_jump},
            title="Standardised noise part (x_t − √ᾱ_t x₀)/√(1−ᾱ_t): step by step vs one jump",
            x_title="standardised value",
        )
    st.plotly_chart(hist, width="stretch")
    st.caption(
        (
            f"With SNR {snr:.2g} (below {NOISE_ONLY_SNR:g}), x_t itself is almost pure N(0, 1) noise. "
            if noise_only
            else f"With SNR {snr:.2g} the photo is still in x_t, so the chart shows the standardised noise part. "
        )
        + "Standardised noise part — chain: mean "
        + f"{np.mean(z_chain):+.3f}, std {np.std(z_chain):.3f}; jump: mean {np.mean(z_jump):+.3f}, "
        + f"std {np.std(z_jump):.3f} (N(0, 1): mean 0, std 1)."
    )


settings_and_pictures()
