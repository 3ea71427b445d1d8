"""Page: Start here. The whole idea in one minute of pictures, computed live; words first, formulas on the pages.

Rule (issue 26): no formula above the first picture (tests/unit/app/test_start.py and tests/e2e check it).
"""

from __future__ import annotations

import streamlit as st

from app.charts.render import DISPLAY_PX, picture, to_picture
from app.compute import core, reverse
from app.session import which_model
from app.ui import pictures, tour
from app.ui.common import progress_bar, require_image, require_model

DROWN_TS = (0, 150, 350, 600, 999)  # the photo drowning, light to total
GUESS_T = 300  # the network's guess is shown at this t
EMERGE_STEPS = 25  # DDIM steps of the picture that emerges from noise
EMERGE_SHOWN = 6  # frames of it shown
EMERGE_CLASS = "Sneaker"  # the Fashion generator's class to draw (a shape every learner knows)
SEED = 0

st.title("Start here: diffusion in one minute")
st.markdown(
    "A diffusion model learns to **clean up noise**. Teach it on photos that are buried in noise a little at a "
    "time, and it can start from pure noise and clean its way to a brand-new picture. Three pictures tell the story."
)
tour.offer()  # the guided tour, once per browser session (app/ui/tour.py)

model = require_model()
img = require_image()
T = model.schedule.T

# --- 1. drowning ---------------------------------------------------------------------------------------
st.subheader("1. Drown a photo in noise")
cols = st.container(key="pics_start_drown").columns(len(DROWN_TS))
for c, t in zip(cols, DROWN_TS, strict=True):
    tt = min(t, T - 1)
    x_t, _ = core.forward_jump(img.key, img.resolution, "linear", tt, SEED, img.x0)
    c.image(picture(x_t), caption=f"step t = {tt}", width="stretch")
st.markdown(
    "Each step adds a little random noise. After a few hundred steps the photo is hard to see; after 1000 it is "
    "gone. That is the easy direction: no learning needed."
)
st.page_link("views/forward.py", label="Try it: drag the noise slider yourself", icon=":material/blur_on:")

# --- 2. the guess ---------------------------------------------------------------------------------------
st.subheader("2. A network guesses the noise")
t_guess = min(GUESS_T, T - 1)
r = reverse.denoise_at(img.key, img.resolution, which_model.model_key(), t_guess, SEED, img.x0, model)
a, b, c, d = st.container(key="pics_start_guess").columns(4)
a.image(pictures.photo(img.key, img.resolution, img.x0), caption="the clean photo", width="stretch")
b.image(picture(r["x_t"]), caption=f"what the network sees (step {t_guess})", width="stretch")
c.image(pictures.noise("start", img.key, img.resolution, SEED, r["eps_hat"]), caption="its guess of the noise",
        width="stretch")  # fmt: skip
d.image(picture(r["x0_hat"]), caption="photo minus the guessed noise", width="stretch")
st.markdown(
    "The network is shown a noisy photo and asked one question: *which part of this is noise?* Take its guess "
    "away and you get its idea of the clean photo: blurry when the noise is heavy, sharp when it is light."
)
st.page_link("views/denoise.py", label="Look closer: one guess at any step", icon=":material/auto_fix_high:")


# --- 3. emerging ----------------------------------------------------------------------------------------
def emerge_model():
    """The Fashion generator when it is bundled (it draws garments from noise), else the chosen model."""
    fashion = which_model.fashion_generator()
    if fashion is not None:
        return "fashion", fashion
    return which_model.model_key(), model


st.subheader("3. Ask again and again: a picture appears out of noise")
mkey, gen = emerge_model()
label = None
if gen.conditional:
    names = list(gen.classes)
    label = names.index(EMERGE_CLASS) if EMERGE_CLASS in names else 0
with progress_bar() as progress:
    run, _ = reverse.trajectory(
        None, gen.resolution, mkey, gen.schedule.T - 1, "ddim", 0.0, EMERGE_STEPS, SEED, None, gen, label, 0.0, progress
    )
k = len(run.frames)
shown = sorted({round(i * (k - 1) / (EMERGE_SHOWN - 1)) for i in range(EMERGE_SHOWN)})
cols = st.container(key="pics_start_emerge").columns(len(shown) + 1)
for c, i in zip(cols, shown, strict=False):
    f = run.frames[i]
    c.image(to_picture(f.x_t, DISPLAY_PX), caption=f"step t = {f.t}", width="stretch")
cols[-1].image(to_picture(run.final, DISPLAY_PX), caption="the new picture", width="stretch")
what = f"a {gen.classes[label].lower()}" if label is not None else "a new picture"
st.markdown(
    f"Start from pure noise. Ask the network for its guess, remove a little of the guessed noise, ask again: "
    f"{EMERGE_STEPS} times. Out comes {what} that was never in the training set"
    + (" (drawn by the bundled Fashion generator, trained on 60,000 garments)." if mkey == "fashion" else ".")
)
st.page_link("views/trajectory.py", label="Watch every step, and run it yourself", icon=":material/fast_rewind:")

# --- where next ---------------------------------------------------------------------------------------
st.subheader("Where next")
st.page_link("views/forward.py", label="Forward process: the noising, with its formula", icon=":material/blur_on:")
st.page_link("views/denoise.py", label="Denoise one step: the guess, measured", icon=":material/auto_fix_high:")
st.page_link("views/trajectory.py", label="Reverse trajectory: noise back to a picture", icon=":material/fast_rewind:")
st.page_link("views/inside.py", label="Inside the network: what its layers see", icon=":material/hub:")
st.page_link("views/objective.py", label="Training objective: how it learns", icon=":material/functions:")
st.page_link(
    "views/particles.py", label="Particle lab: diffusion on dots you can draw, arrow by arrow",
    icon=":material/scatter_plot:",
)  # fmt: skip
st.page_link("views/race.py", label="Sampler race: fewer steps, which sampler keeps up?", icon=":material/speed:")
st.page_link("views/words.py", label="Words to pictures: a prompt becomes a picture", icon=":material/palette:")
st.page_link("views/questions.py", label="Questions students ask: does it just copy?", icon=":material/help:")
st.page_link("views/about.py", label="About the ideas: the maths in one table", icon=":material/menu_book:")
st.page_link("views/glossary.py", label="Words: every term in plain words", icon=":material/dictionary:")
