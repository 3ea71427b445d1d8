"""Words to a picture, every step recorded: prompt -> tokens -> embeddings -> the reverse process on the latent, with
classifier-free guidance against a negative prompt, and each word's cross-attention map at every step.

The steps are the project's own (:func:`model.diffusion.trajectory.sample_trajectory`, DDIM with eta = 0 by default);
guidance is :func:`model.diffusion.guidance.cfg_combine` (Ho & Salimans 2021, eq. 6):

    eps_tilde = eps_hat(x_t, prompt) + w (eps_hat(x_t, prompt) - eps_hat(x_t, negative prompt))

with the empty prompt as the negative prompt by default (w = 0: the plain conditional model). Both predictions come
from one U-Net pass on a doubled batch.

Cross-attention maps: each ``attn2`` layer of the U-Net (queries: the latent's positions, keys: the tokens) gets an
:class:`AttentionRecorder`, which computes attention exactly as diffusers' ``AttnProcessor`` and, while a recording
is open in the current thread (:func:`recording`), keeps softmax(QK^T / sqrt(d)) averaged over heads. A step's map
per token is the mean over layers, each upsampled to 8×8: (L, 8, 8), rows summing to 1 over tokens at each position.

Shapes: latents (B, 4, 8, 8) float32 (scaled by the autoencoder's ``scaling_factor``); pictures (B, 3, 32, 32) in
[-1, 1]; token ids (B, 12) int64; embeddings (B, 12, 128).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.diffusion.guidance import cfg_combine
from model.diffusion.reverse import predict_x0
from model.diffusion.trajectory import make_timesteps, sample_trajectory
from model.emoji.nets import LATENT_CHANNELS, LATENT_RES
from model.emoji.pipeline import EmojiPipeline

MAX_PROMPT_CHARS = 120
MAX_STEPS = 100
MAX_BATCH = 64
_STORE: contextvars.ContextVar[list | None] = contextvars.ContextVar("emoji_attention_store", default=None)


class AttentionRecorder:
    """diffusers' plain ``AttnProcessor`` maths for a cross-attention layer, keeping the attention probabilities
    (averaged over heads, (B, N, L)) in the open recording of this thread, if any. Stateless itself: safe to share."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if hidden_states.ndim != 3 or attn.group_norm is not None or attn.spatial_norm is not None:
            raise ValueError("AttentionRecorder handles transformer-block attention on (B, N, C) only")
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if attn.norm_cross and encoder_hidden_states is not None:
            context = attn.norm_encoder_hidden_states(context)
        b, length = context.shape[0], context.shape[1]
        mask = attn.prepare_attention_mask(attention_mask, length, b)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, mask)  # (B * heads, N, L)
        store = _STORE.get()
        if store is not None:
            store.append(probs.detach().reshape(b, -1, *probs.shape[1:]).mean(1))  # (B, N, L)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def install_recorders(unet) -> int:
    """Give every cross-attention (``attn2``) layer of ``unet`` an :class:`AttentionRecorder`; returns how many."""
    procs = {name: (AttentionRecorder() if ".attn2." in name else proc) for name, proc in unet.attn_processors.items()}
    count = sum(isinstance(p, AttentionRecorder) for p in procs.values())
    unet.set_attn_processor(procs)  # (it empties the dict)
    return count


@contextmanager
def recording() -> Iterator[list]:
    """Collect the attention probabilities of every recorder call in this thread (and only this one)."""
    store: list = []
    token = _STORE.set(store)
    try:
        yield store
    finally:
        _STORE.reset(token)


def maps_from_store(store: list, res: int = LATENT_RES) -> torch.Tensor:
    """(B, N_i, L) per layer -> (B, L, res, res): each layer's map upsampled to res×res, averaged over layers."""
    maps = []
    for p in store:
        side = int(round(p.shape[1] ** 0.5))
        m = p.transpose(1, 2).reshape(p.shape[0], p.shape[2], side, side)
        maps.append(F.interpolate(m, size=(res, res), mode="bilinear", align_corners=False) if side != res else m)
    return torch.stack(maps).mean(0)


@dataclass(frozen=True)
class Settings:
    """What one run asks for (frozen: a cache key)."""

    prompt: str
    negative: str = ""
    w: float = 3.0  # guidance scale in eq. 6's form: 0 = conditional only
    steps: int = 25
    seed: int = 0
    batch: int = 1
    eta: float = 0.0


def check_settings(s: Settings) -> None:
    """Raise ``ValueError`` with one sentence a person can act on."""
    for label, text in (("prompt", s.prompt), ("negative prompt", s.negative)):
        if len(text) > MAX_PROMPT_CHARS:
            raise ValueError(f"the {label} is {len(text)} characters long; keep it under {MAX_PROMPT_CHARS}")
    if not 1 <= s.steps <= MAX_STEPS:
        raise ValueError(f"the number of steps must lie in 1..{MAX_STEPS}, got {s.steps}")
    if not 1 <= s.batch <= MAX_BATCH:
        raise ValueError(f"the number of pictures must lie in 1..{MAX_BATCH}, got {s.batch}")
    if not 0 <= s.w <= 20:
        raise ValueError(f"the guidance scale w must lie in 0..20, got {s.w}")


@dataclass(frozen=True)
class EmojiRun:
    """A finished run, every step kept (S steps, B pictures). Latent tensors (S, B, 4, 8, 8); pictures (S, B, 3, 32, 32)
    in [-1, 1]; attention (S, B, L, 8, 8) for the prompt's tokens, or None when not recorded."""

    settings: Settings
    tokens: list[str]  # the prompt's token strings, [START] first (what the maps' L axis is)
    timesteps: list[int]
    x_t: torch.Tensor
    eps_cond: torch.Tensor
    eps_uncond: torch.Tensor
    eps_hat: torch.Tensor
    x0_hat: torch.Tensor  # latent x0_hat of the guided prediction
    x0_pictures: torch.Tensor  # decoded x0_hat of the guided prediction
    x0_cond_pictures: torch.Tensor  # decoded x0_hat of the conditional prediction alone
    x0_uncond_pictures: torch.Tensor  # decoded x0_hat of the negative / empty prompt's prediction alone
    final: torch.Tensor  # (B, 3, 32, 32) the finished pictures
    attention: torch.Tensor | None


@torch.no_grad()
def embed(pipe: EmojiPipeline, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, 12), embeddings (B, 12, 128))."""
    ids = pipe.tokenizer.encode(prompts)
    return ids, pipe.text_encoder(ids)


def token_strings(pipe: EmojiPipeline, prompt: str) -> list[str]:
    """The prompt's tokens as text, [START] first; unknown words show as ``[UNK] (word)``."""
    idx = pipe.tokenizer.index
    return ["[START]"] + [w if w in idx else f"[UNK] ({w})" for w in pipe.tokenizer.split(prompt)]


@torch.no_grad()
def decode(pipe: EmojiPipeline, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Scaled latents (N, 4, 8, 8) -> pictures (N, 3, 32, 32) in about [-1, 1]."""
    z = z / pipe.scaling_factor
    return torch.cat([pipe.vae.decode(z[i : i + batch]).sample for i in range(0, len(z), batch)]).clamp(-1, 1)


@torch.no_grad()
def generate(
    pipe: EmojiPipeline,
    s: Settings,
    record_attention: bool = True,
    decode_steps: bool = True,
    cond: torch.Tensor | None = None,
) -> EmojiRun:
    """Run the reverse process for ``s`` from seeded noise at t = T - 1, recording every step (see module docstring).
    ``cond`` (1, 12, 128), if given, is read in place of the text encoder's output for ``s.prompt`` (a mix of two
    prompts' outputs: :mod:`model.emoji.explore`)."""
    check_settings(s)
    g = torch.Generator().manual_seed(s.seed)
    x_T = torch.randn((s.batch, LATENT_CHANNELS, LATENT_RES, LATENT_RES), generator=g)
    return reverse_from(pipe, s, x_T, pipe.schedule.T - 1, g, record_attention, decode_steps, cond)


@torch.no_grad()
def reverse_from(
    pipe: EmojiPipeline,
    s: Settings,
    x_start: torch.Tensor,
    t_start: int,
    g: torch.Generator,
    record_attention: bool = True,
    decode_steps: bool = True,
    cond: torch.Tensor | None = None,
) -> EmojiRun:
    """The guided reverse process of :func:`generate` from a given latent ``x_start`` (B, 4, 8, 8) at timestep index
    ``t_start`` (0 <= t_start <= T - 1), over ``make_timesteps(t_start, s.steps)``; ``g`` draws any further noise
    (eta > 0). :func:`generate` starts from noise at T - 1; SDEdit (:mod:`model.emoji.sdedit`) from a noised photo."""
    check_settings(s)
    if tuple(x_start.shape) != (s.batch, LATENT_CHANNELS, LATENT_RES, LATENT_RES):
        raise ValueError(f"the starting latent must be ({s.batch}, 4, 8, 8), got {tuple(x_start.shape)}")
    if not 0 <= t_start <= pipe.schedule.T - 1:
        raise ValueError(f"the starting timestep must lie in 0..{pipe.schedule.T - 1}, got {t_start}")
    if cond is None:
        _, cond = embed(pipe, [s.prompt])
    _, uncond = embed(pipe, [s.negative])
    context = torch.cat([cond.expand(s.batch, -1, -1), uncond.expand(s.batch, -1, -1)])  # (2B, L, D)
    preds, maps = [], []

    def eps_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with recording() as store:
            out = pipe.unet(torch.cat([x_t, x_t]), torch.cat([t, t]), encoder_hidden_states=context).sample
        e_c, e_u = out.chunk(2)
        preds.append((e_c, e_u))
        if record_attention and store:
            maps.append(maps_from_store(store)[: s.batch])  # the prompt's half
        return cfg_combine(e_c, e_u, s.w)

    ts = make_timesteps(t_start, s.steps)
    recs = list(sample_trajectory(eps_model, pipe.schedule, x_start, ts, sampler="ddim", eta=s.eta, generator=g))
    x_t = torch.stack([r.x_t for r in recs])
    eps_c = torch.stack([p[0] for p in preds])
    eps_u = torch.stack([p[1] for p in preds])
    x0 = torch.stack([r.x0_hat for r in recs])
    final = decode(pipe, recs[-1].x_prev)
    S, B = len(recs), s.batch
    if decode_steps:
        t_b = torch.tensor(ts).repeat_interleave(B)
        flat = x_t.flatten(0, 1)
        x0_c = predict_x0(pipe.schedule, flat, eps_c.flatten(0, 1), t_b)
        x0_u = predict_x0(pipe.schedule, flat, eps_u.flatten(0, 1), t_b)
        pics = decode(pipe, torch.cat([x0.flatten(0, 1), x0_c, x0_u])).reshape(3, S, B, 3, 32, 32)
    else:
        pics = final[None, None].expand(3, S, B, 3, 32, 32)
    att = torch.stack(maps) if record_attention and maps else None
    if att is not None:
        att = att[:, :, : len(token_strings(pipe, s.prompt))]
    return EmojiRun(
        s,
        token_strings(pipe, s.prompt),
        ts,
        x_t,
        eps_c,
        eps_u,
        torch.stack([r.eps_hat for r in recs]),
        x0,
        *pics,
        final,
        att,
    )
