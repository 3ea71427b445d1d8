"""Page: words to pictures. A miniature Stable Diffusion trained here on emoji (issue 37), opened up: the tokens,
the latent at every step, each word's cross-attention map, guidance against a negative prompt, and a photo turned
into an emoji (SDEdit).

The page reads its widgets, calls :mod:`app.compute.emoji` and draws with :mod:`app.charts.emoji`.
"""

from __future__ import annotations

import streamlit as st

from app.charts import emoji as pe
from app.charts.render import DISPLAY_PX, to_picture
from app.compute import emoji as be
from app.compute.emoji import MAX_PROMPT_CHARS, MAX_STEPS, explore
from app.compute.emoji import words as read_words
from app.session import image, state
from app.session import text as outside_text

state.set_default("emoji_prompt", "smiling face")
state.set_default("emoji_negative", "")
state.set_default("emoji_w", 3.0)
state.set_default("emoji_steps", 25)
state.set_default("emoji_seed", 0)
state.set_default("emoji_second", "cat")
state.set_default("emoji_strength", 0.6)

st.title("Words to pictures")
st.markdown(
    "A text-to-image generator turns words into a picture in three parts. A **text encoder** reads your words and "
    "turns each one into a list of numbers (its embedding). An **autoencoder** squeezes a 32×32 colour picture into "
    "a small grid of numbers, the *latent*, and back. A **U-Net** starts from pure noise in that latent and removes "
    "the noise step by step, looking at your words through **cross-attention** at every step. All three were "
    "trained on this machine's processor, on about 3,800 emoji (Google's Noto and Twitter's Twemoji art), so they "
    "are small enough to open up."
)

try:
    pipe = be.pipeline()
except be.ModelNotTrained:
    st.info(
        "The words-to-pictures model is not trained yet: run `python -m model.cli.train_emoji` (see docs/models.md)."
    )
    st.stop()


def _use_example() -> None:
    choice = st.session_state.get("emoji_example")
    if choice:
        st.session_state["emoji_prompt"] = choice


def _add_word() -> None:
    word = st.session_state.get("emoji_add")
    if word:
        st.session_state["emoji_prompt"] = (st.session_state.get("emoji_prompt", "") + " " + word).strip()[
            :MAX_PROMPT_CHARS
        ]
    st.session_state["emoji_add"] = None


st.pills("Try", be.EXAMPLES, key="emoji_example", on_change=_use_example)
c1, c2 = st.columns([3, 2])
prompt = c1.text_input("Prompt", key="emoji_prompt", max_chars=MAX_PROMPT_CHARS)
c2.selectbox(
    "Add a word the model knows",
    be.vocabulary(str(be.model_dir()), be.stamp(be.model_dir())),
    index=None,
    key="emoji_add",
    on_change=_add_word,
    placeholder="type to search the vocabulary",
)
c1, c2, c3, c4 = st.columns([2, 3, 1, 1])
w = c1.slider(
    "Guidance w",
    0.0,
    10.0,
    key="emoji_w",
    step=0.5,
    help="0: the prompt alone; larger: pushed harder towards the prompt, away from the negative prompt",
)
negative = c2.text_input(
    "Negative prompt",
    key="emoji_negative",
    max_chars=MAX_PROMPT_CHARS,
    help="what to steer away from (empty: nothing in particular)",
)
steps = int(c3.number_input("Steps", 1, MAX_STEPS, key="emoji_steps"))
seed = int(c4.number_input("Seed", 0, 2**31 - 1, key="emoji_seed"))

unknown = pipe.tokenizer.unknown(prompt)
if unknown:
    st.caption(
        f"Not in the vocabulary: {', '.join(unknown[:8])}. Each unknown word becomes the token [UNK], which the model "
        "never learned anything about, so it steers the picture no more than an empty prompt would."
    )
try:
    r = be.run(str(be.model_dir()), be.stamp(be.model_dir()), prompt, negative, float(w), steps, seed)
except ValueError as e:
    st.warning(f"{e}.")
    st.stop()

S = len(r.timesteps)
st.subheader("1. Your words become tokens, and tokens become numbers")
st.markdown(
    "The tokenizer splits the prompt into words and looks each one up in the list of words the emoji use; "
    "[START] opens every prompt. The text encoder then gives each token an embedding: the rows below are what "
    "the U-Net reads."
)
st.text("  ".join(r.tokens))
st.plotly_chart(pe.embedding_heatmap(r.embeddings, r.tokens), width="stretch")

st.subheader("2. From noise to a picture, step by step")
st.markdown(
    "The U-Net works on the latent (left: its 4 channels). At every step it guesses the finished latent; the "
    "autoencoder's decoder turns that guess into a picture, x̂₀ (middle). Move the slider to walk through the run."
)
step = st.slider("Step", 1, S, value=S, key="emoji_step") - 1
c1, c2, c3 = st.columns([3, 1, 1])
c1.plotly_chart(pe.latent_channels(r.latents[step], r.timesteps[step]), width="stretch")
c2.image(to_picture(r.x0[step], DISPLAY_PX // 2), caption=f"x̂₀ at step {step + 1} of {S}", width="stretch")
c3.image(to_picture(r.final, DISPLAY_PX // 2), caption="the finished picture", width="stretch")

st.subheader("3. Where each word looks: cross-attention")
st.markdown(
    "At every position of the latent, cross-attention shares out the picture's attention among the tokens. "
    "Bright where the word is attended, dark where it is not (averaged over the U-Net's 7 cross-attention layers)."
)
words = r.tokens[1:]
if words:
    cols = st.columns(min(len(words), 6))
    for k, pic in enumerate(be.overlays(r, step)[:6]):
        cols[k].image(to_picture(pic, DISPLAY_PX // 2), caption=words[k], width="stretch")
    st.plotly_chart(pe.attention_over_steps(r.attention, r.tokens, r.timesteps), width="stretch")
else:
    st.caption("The prompt is empty: there is no word to look at (only [START]).")

st.subheader("4. Guidance and the negative prompt")
st.markdown(
    "The U-Net makes two guesses at every step: one with your prompt and one with the negative prompt (or with no "
    "words at all). Guidance takes the prompt's guess and pushes it further away from the other one, w times the "
    "difference:"
)
st.latex(
    r"\tilde\epsilon = \hat\epsilon(x_t, \text{prompt}) + w\,(\hat\epsilon(x_t, \text{prompt}) - \hat\epsilon(x_t, \text{negative}))"
)
c1, c2, c3 = st.columns(3)
c1.image(to_picture(r.x0_cond[step], DISPLAY_PX // 2), caption="x̂₀ of the prompt alone", width="stretch")
c2.image(to_picture(r.x0_uncond[step], DISPLAY_PX // 2), caption="x̂₀ of the negative prompt alone", width="stretch")
c3.image(to_picture(r.x0[step], DISPLAY_PX // 2), caption=f"x̂₀ guided, w = {w:g}", width="stretch")
st.caption(f"This run: {S} steps in {r.seconds:.2f} s on the server's processor, attention maps recorded.")


def _row(pictures: list, captions: list[str]) -> None:
    """One picture per column, each with its caption (plain text)."""
    for col, pic, cap in zip(st.columns(len(pictures)), pictures, captions, strict=True):
        col.image(to_picture(pic, DISPLAY_PX // 2), caption=cap, width="stretch")


def _draw(request: tuple, compute, items: list, caption) -> None:
    """Compute one picture per item with a progress bar (each cached: instant once made), then draw the row.
    ``request`` is (prompt, negative, w, steps, seed, ...) as the button stored it."""
    bar, pics = st.progress(0.0, text="Starting…"), []
    for k, item in enumerate(items):
        bar.progress(k / len(items), text=f"Picture {k + 1} of {len(items)}: {caption(item)}")
        pics.append(compute(item))
    bar.empty()
    _row(pics, [caption(i) for i in items])
    st.caption(f"The same noise in every picture: seed {request[4]}, {request[3]} steps, guidance w = {request[2]:g}.")


def _as_read(text: str) -> str:
    """A prompt as the tokenizer reads it (lower-case words only: safe to show as plain text)."""
    return " ".join(read_words(text)) or "(no words)"


here = (str(be.model_dir()), be.stamp(be.model_dir()))
settings = (prompt, negative, float(w), steps, seed)

st.subheader("5. The prompt, one word at a time")
st.markdown(
    "The same noise, drawn with the prompt's first word, then its first two, and so on up to the whole prompt "
    f"(at most {explore.MAX_REVEAL_WORDS} words): each picture differs from the one before by one word, so you see "
    "what each word changes."
)
if st.button("Reveal the prompt word by word (one picture per word)", key="emoji_reveal_go"):
    st.session_state["emoji_reveal"] = settings
if st.session_state.get("emoji_reveal"):
    req = st.session_state["emoji_reveal"]
    try:
        explore.check_reveal(req[0])
        _draw(req, lambda p: be.reveal_picture(*here, p, *req[1:]), explore.reveal_prompts(req[0]), lambda p: p)
        if len(read_words(req[0])) > explore.MAX_REVEAL_WORDS:
            st.caption(f"Only the first {explore.MAX_REVEAL_WORDS} words are revealed.")
    except ValueError as e:
        st.warning(f"{e}.")

st.subheader("6. Between two prompts")
st.markdown(
    "The same noise again, but the U-Net reads a mix of what the text encoder made of two prompts: all of the "
    "first, then three quarters, half, a quarter, none. The picture slides from one prompt's picture to the other's."
)
st.latex(r"c(\lambda) = (1-\lambda)\, c_{\text{first}} + \lambda\, c_{\text{second}}")
second = st.text_input(
    "Second prompt", key="emoji_second", max_chars=MAX_PROMPT_CHARS, help="the words to move towards"
)
if st.button("Interpolate from the prompt to the second prompt (5 pictures)", key="emoji_mix_go"):
    st.session_state["emoji_mix"] = settings + (second,)
if st.session_state.get("emoji_mix"):
    req = st.session_state["emoji_mix"]
    try:
        explore.check_pair(req[0], req[5])
        _draw(
            req,
            lambda lam: be.mixed_picture(*here, req[0], req[5], lam, *req[1:5]),
            list(explore.LAMBDAS),
            lambda lam: f"λ = {lam:g}" + {0.0: f": {_as_read(req[0])}", 1.0: f": {_as_read(req[5])}"}.get(lam, ""),
        )
    except ValueError as e:
        st.warning(f"{e}.")

st.subheader("7. Turn your photo into an emoji")
st.markdown(
    "Instead of starting from pure noise, start from your photo with some noise added, and let the U-Net remove "
    "that noise while it reads the prompt above. A little noise keeps the photo's shapes and colours; a lot of "
    "noise leaves the words more room. This is SDEdit (Meng et al. 2022)."
)
strength = st.slider(
    "Strength",
    0.05,
    1.0,
    key="emoji_strength",
    step=0.05,
    help="how far the photo is noised before the U-Net takes over: less keeps more of the photo, more follows the "
    "words (1: almost pure noise, as a picture made from words alone)",
)
try:
    img = image.current_image(3)
except ValueError as e:  # ImageLoadError: the upload could not be read (its message is one sentence)
    img = None
    st.warning(f"{e}")
else:
    if img is None:
        st.info(
            "There is no photo to start from: upload one in the sidebar, or switch the image source back to a "
            "sample photo there."
        )
if img is not None:
    try:
        with st.spinner("Turning the photo into an emoji…"):
            ed = be.photo_edit(*here, img.key, img.resolution, *settings, float(strength), img.x0)
    except ValueError as e:
        st.warning(f"{e}.")
    else:
        _row(
            [ed.photo, ed.kept, ed.start, ed.result],
            [
                "your photo at 32 px",
                "what the autoencoder keeps of it",
                f"noised to t = {ed.t_start}",
                f"the emoji: {_as_read(prompt)}",
            ],
        )
        st.markdown(
            "Less strength keeps more of the photo; more strength follows the words. The photo is shrunk to 32 px "
            "and squeezed into the latent, then noised in one jump with the closed form of the forward process, to "
            "t = strength · (T − 1):"
        )
        st.latex(
            r"x_{t_\text{start}} = \sqrt{\bar\alpha_{t_\text{start}}}\, z_0 + \sqrt{1-\bar\alpha_{t_\text{start}}}\, \epsilon"
        )
        st.caption(
            f"The photo: {outside_text.code(img.name)}, chosen in the sidebar. {ed.steps} steps from "
            f"t = {ed.t_start} (T = {pipe.schedule.T}) in {ed.seconds:.2f} s, guidance w = {w:g}, seed {seed}."
        )
