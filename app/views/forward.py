"""Page: the forward process q, closed form and Markov chain, on the current image."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import backend, plots
from app.common import require_image
from app.render import NOISE_CAPTION, noise_picture, picture

st.title("Forward process: drowning a photo in noise")
st.markdown(
    "Each step of the forward process adds a little Gaussian noise: "
    r"$q(x_t \mid x_{t-1}) = \mathcal{N}\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big)$. "
    "Chained, the steps form a Markov chain "
    r"$q(x_{1:T} \mid x_0) = \prod_t q(x_t \mid x_{t-1})$, "
    "and thanks to the reparametrisation you can jump straight to any step: "
    r"$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ with $\epsilon \sim \mathcal{N}(0, I)$."
)

# The settings are drawn before the image is read: while an upload is on its way there is no image and the
# page stops, and a widget that disappears and comes back showed its default (t = 0) in the browser while
# the pictures kept the old t (issue 17).
c1, c2, c3 = st.columns([3, 1, 1])
t = c1.slider(
    "Timestep t",
    0,
    999,
    key="fwd_t",
    persist_state="session",
    help="t = 0 is the first noising step, t = 999 the last.",
)
schedule_name = c2.radio("Schedule", ["linear", "cosine"], key="fwd_schedule", persist_state="session", horizontal=True)
seed = int(c3.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="fwd_seed", persist_state="session"))

img = require_image()
schedule = backend.schedule(schedule_name)
x_t, eps = backend.forward_jump(img.key, img.resolution, schedule_name, t, seed, img.x0)
sab, s1ab = float(schedule.sqrt_alpha_bar[t]), float(schedule.sqrt_one_minus_alpha_bar[t])

cols = st.columns(3)
cols[0].image(picture(img.x0), caption="x₀ — the clean photo", width="stretch")
cols[1].image(noise_picture(eps), caption=f"ε ~ N(0, I) — the noise ({NOISE_CAPTION})", width="stretch")
cols[2].image(picture(x_t), caption=f"x_t at t = {t}", width="stretch")

st.latex(
    rf"x_{{{t}}} = \sqrt{{\bar\alpha_{{{t}}}}}\,x_0 + \sqrt{{1-\bar\alpha_{{{t}}}}}\,\epsilon"
    rf" = {sab:.3f}\,x_0 + {s1ab:.3f}\,\epsilon"
)
snr = float(schedule.snr[t])
st.caption(
    f"ᾱ_t = {float(schedule.alpha_bar[t]):.5f}, β_t = {float(schedule.betas[t]):.5f}, "
    f"signal-to-noise ratio ᾱ/(1−ᾱ) = {snr:.4g}. "
    + ("The photo still dominates." if snr > 1 else "The noise now dominates the photo.")
)
st.plotly_chart(plots.schedule_chart(schedule, t), width="stretch")

st.subheader("Step by step, or in one jump?")
st.markdown(
    f"Running the chain $q(x_s \\mid x_{{s-1}})$ one link at a time, {t + 1} times, gives a different "
    "picture (different random draws) but the **same distribution** as the one-jump formula above."
)
if not st.toggle(
    "Run the Markov chain step by step",
    key="fwd_chain",
    persist_state="session",
    help="Runs t + 1 noising steps each time t changes: snapshots along the chain, both endpoints and their "
    "pixel statistics. Off by default to keep the slider fast for a whole classroom.",
):
    st.stop()
with st.spinner(f"Running the Markov chain for {t + 1} steps…"):
    x_chain, snaps = backend.forward_chain(img.key, img.resolution, schedule_name, t, seed, 6, img.x0)
st.image(
    [picture(x, 128) for _, x in snaps],
    caption=[f"chain, step s = {s}" for s, _ in snaps],
    width=128,
)
a, b = st.columns(2)
a.image(picture(x_chain), caption=f"x_t by {t + 1} chain steps", width="stretch")
b.image(picture(x_t), caption="x_t in one jump (closed form)", width="stretch")

# The noise part of each x_t, standardised: (x_t - sqrt(ab) x0) / sqrt(1 - ab) should be N(0, 1) for both.
z_chain = ((x_chain - sab * img.x0) / s1ab).numpy().ravel()
z_jump = ((x_t - sab * img.x0) / s1ab).numpy().ravel()
big_t = t >= 500
hist = plots.histogram_chart(
    {"chain x_t": x_chain.numpy().ravel(), "one-jump x_t": x_t.numpy().ravel()}
    if big_t
    else {"chain: (x_t − √ᾱ x₀)/√(1−ᾱ)": z_chain, "jump: (x_t − √ᾱ x₀)/√(1−ᾱ)": z_jump},
    normal=True,
)
st.plotly_chart(hist, width="stretch")
st.caption(
    ("At large t, x_t itself is almost pure N(0, 1) noise. " if big_t else "")
    + "Standardised noise part — chain: mean "
    + f"{np.mean(z_chain):+.3f}, std {np.std(z_chain):.3f}; jump: mean {np.mean(z_jump):+.3f}, "
    + f"std {np.std(z_jump):.3f} (N(0, 1): mean 0, std 1)."
)
