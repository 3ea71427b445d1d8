"""The words-to-pictures page's door to ``model/emoji``: the loaded model (shared by every session) and the recorded
runs (cached, keyed on the model's export time and the exact settings).

Prompts are untrusted input: :func:`model.emoji.sample.check_settings` caps their length, the page shows them only
as plain text (never markdown), and a run's memory is bounded (at most ``MAX_STEPS`` steps of one picture, about
1 MB, and :data:`KEEP_RUNS` runs kept for everyone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from model.emoji import explore, sample, sdedit
from model.emoji.data import to_uint8
from model.emoji.data import words as words
from model.emoji.figure import attention_overlay
from model.emoji.pipeline import DEFAULT_DIR, EmojiPipeline, ModelNotTrained, load_pipeline
from model.emoji.sample import MAX_PROMPT_CHARS as MAX_PROMPT_CHARS
from model.emoji.sample import MAX_STEPS as MAX_STEPS

KEEP_RUNS = 64
MODEL_KEY = "emoji_model_dir"  # session key of another folder for the emoji model (tests put a tiny one there)
EXAMPLES = ("smiling face", "red heart", "cat", "pizza", "car", "flag", "sun", "rocket")


def model_dir() -> Path:
    """checkpoints/emoji-sd, or the folder a test put in the session (no widget sets it)."""
    return Path(st.session_state.get(MODEL_KEY) or DEFAULT_DIR)


def stamp(folder: Path) -> float:
    """When the model was last exported (its model_index.json), so a newer export is loaded; 0 if none."""
    p = folder / "model_index.json"
    return p.stat().st_mtime if p.exists() else 0.0


@st.cache_resource(show_spinner=False, max_entries=2)
def _load(folder: str, _stamp: float) -> EmojiPipeline:
    pipe = load_pipeline(Path(folder))
    sample.install_recorders(pipe.unet)
    return pipe


def pipeline() -> EmojiPipeline:
    """The loaded model; :class:`ModelNotTrained` (its message is one sentence) if the folder lacks a part."""
    folder = model_dir()
    return _load(str(folder), stamp(folder))


@st.cache_resource(show_spinner=False, max_entries=2)
def vocabulary(folder: str, _stamp: float) -> list[str]:
    """The words the model knows, alphabetical (numbers left out)."""
    return [w for w in _load(folder, _stamp).tokenizer.vocab[3:] if w.isalpha()]


@dataclass(frozen=True)
class PageRun:
    """What the page shows of one run, as small numpy arrays. S steps; pictures uint8 (S, 32, 32, 3)."""

    tokens: list[str]
    timesteps: list[int]
    latents: np.ndarray  # (S, 4, 8, 8) float32 x_t
    x0: np.ndarray  # decoded x0_hat of the guided prediction
    x0_cond: np.ndarray
    x0_uncond: np.ndarray
    final: np.ndarray  # (32, 32, 3)
    attention: np.ndarray  # (S, L, 8, 8) float32, L = len(tokens)
    embeddings: np.ndarray  # (L, 128) the text encoder's output for the prompt's tokens
    seconds: float


@st.cache_data(max_entries=KEEP_RUNS, show_spinner=False)
def run(folder: str, _stamp: float, prompt: str, negative: str, w: float, steps: int, seed: int) -> PageRun:
    """One recorded run of one picture (raises ValueError with a sentence for bad settings)."""
    import time

    pipe = pipeline()
    s = sample.Settings(prompt, negative, float(w), int(steps), int(seed))
    t0 = time.perf_counter()
    r = sample.generate(pipe, s)
    took = time.perf_counter() - t0
    _, emb = sample.embed(pipe, [prompt])
    L = len(r.tokens)
    return PageRun(
        r.tokens,
        r.timesteps,
        r.x_t[:, 0].numpy(),
        to_uint8(r.x0_pictures[:, 0]),
        to_uint8(r.x0_cond_pictures[:, 0]),
        to_uint8(r.x0_uncond_pictures[:, 0]),
        to_uint8(r.final)[0],
        r.attention[:, 0].numpy(),
        emb[0, :L].numpy(),
        took,
    )


@st.cache_data(max_entries=KEEP_RUNS, show_spinner=False)
def reveal_picture(
    folder: str, stamp: float, prompt: str, negative: str, w: float, steps: int, seed: int
) -> np.ndarray:
    """The finished picture (32, 32, 3) uint8 of one prompt of the word-by-word reveal (raises ValueError)."""
    s = sample.Settings(prompt, negative, float(w), int(steps), int(seed))
    return to_uint8(explore.picture(_load(folder, stamp), s)[None])[0]


@st.cache_data(max_entries=KEEP_RUNS, show_spinner=False)
def mixed_picture(
    folder: str, stamp: float, a: str, b: str, lam: float, negative: str, w: float, steps: int, seed: int
) -> np.ndarray:
    """The finished picture (32, 32, 3) uint8 for the text encoder's outputs of ``a`` and ``b`` mixed at ``lam``."""
    s = sample.Settings(a, negative, float(w), int(steps), int(seed))
    return to_uint8(explore.mixed_picture(_load(folder, stamp), s, b, float(lam))[None])[0]


@dataclass(frozen=True)
class PhotoEdit:
    """What the page shows of one SDEdit run (:mod:`model.emoji.sdedit`): pictures (32, 32, 3) uint8."""

    photo: np.ndarray  # the photo at 32 px, what the encoder reads
    kept: np.ndarray  # decode(encode(photo)): what the autoencoder keeps of it
    start: np.ndarray  # the noised latent x_{t_start}, decoded
    result: np.ndarray  # the finished picture
    t_start: int
    steps: int  # how many reverse steps ran (at most the page's steps, at most t_start + 1)
    seconds: float


@st.cache_data(max_entries=KEEP_RUNS, show_spinner=False)
def photo_edit(
    folder: str,
    stamp: float,
    image_key: str,
    resolution: int,
    prompt: str,
    negative: str,
    w: float,
    steps: int,
    seed: int,
    strength: float,
    _x0: torch.Tensor,
) -> PhotoEdit:
    """SDEdit of the current image ``_x0`` (1, 3, R, R) in [-1, 1] (cached on its key and R, the settings, the strength
    and the model's stamp); raises ValueError with a sentence for bad settings or strength."""
    import time

    pipe = _load(folder, stamp)
    s = sample.Settings(prompt, negative, float(w), int(steps), int(seed))
    t0 = time.perf_counter()
    pixels = sdedit.photo_pixels(_x0)
    r = sdedit.edit(pipe, s, pixels, float(strength), record_attention=False, decode_steps=False)
    took = time.perf_counter() - t0
    start = sample.decode(pipe, r.x_t[0])
    return PhotoEdit(
        to_uint8(pixels)[0],
        to_uint8(sdedit.reconstruct(pipe, pixels))[0],
        to_uint8(start)[0],
        to_uint8(r.final)[0],
        r.timesteps[0],
        len(r.timesteps),
        took,
    )


def overlays(r: PageRun, step: int) -> list[np.ndarray]:
    """Each word's attention map at ``step`` over that step's x̂₀ ([START] left out)."""
    x0 = r.x0[step]
    return [attention_overlay(x0, torch.from_numpy(r.attention[step, k])) for k in range(1, len(r.tokens))]


__all__ = [
    "EXAMPLES",
    "ModelNotTrained",
    "PageRun",
    "PhotoEdit",
    "mixed_picture",
    "model_dir",
    "overlays",
    "photo_edit",
    "pipeline",
    "reveal_picture",
    "run",
    "stamp",
    "vocabulary",
]
