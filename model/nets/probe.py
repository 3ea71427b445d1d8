"""One forward pass of a diffusers ``UNet2DModel``, recorded: what flows through its parts.

Pure torch (no streamlit, no plotly). :func:`capture` runs the network once on x_t with forward hooks
and keeps, for the page "Inside the network":

* every top-level part's output (names as in :mod:`model.nets.anatomy`) as a few of its most active channels,
  uint8 pictures, not float tensors (:class:`Maps`);
* every diffusers ``ResnetBlock2D`` recomputed stage by stage from its own submodules
  (:func:`resnet_stages`; the last stage equals the block's own output, which is checked);
* every self-attention layer's queries and keys, so that :func:`query_weights` gives one query
  position's attention weights softmax(q K^T / sqrt(d)) without another pass.

Feature pictures use one normalisation per tensor: value v maps to grey level
0.5 + v / (2 · 3 · rms), clipped, where rms = sqrt(mean(v²)) over the whole tensor, so mid grey is 0,
black is −3 rms and white is +3 rms (:data:`FEATURE_RANGE`); every channel of a tensor shares it.
Timesteps follow :mod:`model.diffusion.schedule`: t in 0 … T-1, index 0 is the first noising step.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from model.nets.anatomy import inner_modules, top_parts

FEATURE_RANGE = 3.0  # feature pictures map [-3 rms, +3 rms] -> [black, white]
DEFAULT_CHANNELS = 4  # channels kept per tensor (the most active ones)
MAX_PICTURE_SIDE = 64  # larger maps are average-pooled down to this many px before they are stored
MAX_ATTENTION_TOKENS = 4096  # queries and keys are kept for attention layers with at most this many positions

# ---------------------------------------------------------------------------------
# Pictures of a few channels
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Maps:
    """A few channels of one activation tensor as pictures (see the module docstring for the grey scale)."""

    shape: tuple[int, int, int]  # (C, H, W) of the whole tensor
    rms: float  # sqrt(mean(v²)) over the whole tensor: the picture scale
    channels: tuple[int, ...]  # the channels shown, most active (largest mean |v|) first
    pictures: np.ndarray  # (K, h, w) uint8, h, w <= MAX_PICTURE_SIDE


def channel_maps(a: torch.Tensor, k: int = DEFAULT_CHANNELS, max_side: int = MAX_PICTURE_SIDE, channels=None) -> Maps:
    """Pictures of the ``k`` most active channels of ``a`` (1, C, H, W) (or of ``channels`` when given)."""
    x = a[0].detach().float()
    c, h, w = x.shape
    rms = float(x.square().mean().sqrt())
    if channels is None:
        channels = x.abs().mean(dim=(1, 2)).topk(min(k, c)).indices.tolist()
    sel = x[list(channels)]
    if max(h, w) > max_side:
        f = math.ceil(max(h, w) / max_side)
        sel = F.avg_pool2d(sel.unsqueeze(0), f, ceil_mode=True)[0]
    grey = (0.5 + sel / (2 * FEATURE_RANGE * max(rms, 1e-12))).clamp(0, 1)
    pics = (grey * 255).round().to(torch.uint8).cpu().numpy()
    return Maps(shape=(c, h, w), rms=rms, channels=tuple(int(i) for i in channels), pictures=pics)


# ---------------------------------------------------------------------------------
# One ResNet block, step by step
# ---------------------------------------------------------------------------------


def resnet_stages(block, x: torch.Tensor, temb: torch.Tensor | None) -> list[tuple[str, torch.Tensor]]:
    """A diffusers ``ResnetBlock2D`` recomputed from its submodules, as in its own ``forward``.

    GroupNorm → SiLU → conv → + time projection → GroupNorm → SiLU → (dropout) → conv → + skip
    (Ho et al. 2020's Wide-ResNet block; the blog's Fig. 12).

    :param x: the block's input (B, C_in, H, W); ``temb``: (B, D) the embedding it received.
    :returns: ``[(label, tensor), ...]`` from the input to the output; the last tensor equals the
        block's output. The "+ time projection" stage's tensor is conv1's output plus the projection.
    """
    kind = getattr(block, "time_embedding_norm", "default")
    if kind not in ("default", "scale_shift"):
        raise ValueError(f"time_embedding_norm {kind!r} is not supported")
    out = [("input", x)]
    h = block.norm1(x)
    out.append(("GroupNorm (norm1)", h))
    h = block.nonlinearity(h)
    out.append(("SiLU", h))
    if block.upsample is not None:
        x, h = block.upsample(x), block.upsample(h)
        out.append(("upsample ×2", h))
    elif block.downsample is not None:
        x, h = block.downsample(x), block.downsample(h)
        out.append(("downsample ×½", h))
    h = block.conv1(h)
    out.append(("conv (conv1)", h))
    proj = None
    if block.time_emb_proj is not None and temb is not None:
        e = temb if block.skip_time_act else block.nonlinearity(temb)
        proj = block.time_emb_proj(e)[:, :, None, None]  # (B, C_out or 2 C_out, 1, 1)
    if kind == "default":
        if proj is not None:
            h = h + proj
            out.append(("+ time projection", h))
        h = block.norm2(h)
        out.append(("GroupNorm (norm2)", h))
    else:
        if proj is None:
            raise ValueError("a scale_shift ResNet block needs the time embedding")
        scale, shift = torch.chunk(proj, 2, dim=1)
        h = block.norm2(h) * (1 + scale) + shift
        out.append(("GroupNorm (norm2), × (1 + scale) + shift from t", h))
    h = block.nonlinearity(h)
    out.append(("SiLU", h))
    h = block.conv2(block.dropout(h))
    out.append(("conv (conv2)", h))
    if block.conv_shortcut is not None:  # C_in != C_out: the input is projected to C_out channels
        out.append(("+ skip (conv_shortcut of the input)", (block.conv_shortcut(x) + h) / block.output_scale_factor))
    else:
        out.append(("+ skip (the input itself)", (x + h) / block.output_scale_factor))
    return out


def time_projection(block, temb: torch.Tensor) -> torch.Tensor | None:
    """What a ``ResnetBlock2D`` adds to its conv1 output: time_emb_proj(SiLU(emb)) as (B, C), or None."""
    if getattr(block, "time_emb_proj", None) is None or temb is None:
        return None
    e = temb if block.skip_time_act else block.nonlinearity(temb)
    return block.time_emb_proj(e)


@dataclass(frozen=True)
class ResnetSteps:
    """One ResNet block's stages as pictures. Channels: the input's most active ones for the stages
    before conv1, the output's most active ones from conv1 on (so one channel can be followed)."""

    name: str
    stages: tuple[tuple[str, Maps], ...]
    time_rms: float  # RMS of the time projection added after conv1 (nan without one)
    conv1_rms: float  # RMS of conv1's output, for scale
    max_error: float  # max |last stage - the block's own output|: the recomputation is exact


# ---------------------------------------------------------------------------------
# Self-attention
# ---------------------------------------------------------------------------------


def attention_support(attn) -> str | None:
    """None when :func:`attention_weights` reproduces this diffusers ``Attention``, else the reason."""
    for what, ok in (
        ("it is cross-attention", not getattr(attn, "is_cross_attention", False)),
        ("it has a spatial norm", getattr(attn, "spatial_norm", None) is None),
        ("it normalises q and k", getattr(attn, "norm_q", None) is None and getattr(attn, "norm_k", None) is None),
        ("it has extra key/value projections", getattr(attn, "add_k_proj", None) is None),
    ):
        if not ok:
            return what
    return None


def _tokens(attn, hidden: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C) with N = H·W positions, group-normed as the attention layer does."""
    b, c, h, w = hidden.shape
    x = hidden.reshape(b, c, h * w).transpose(1, 2)
    if attn.group_norm is not None:
        x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
    return x


def _heads(attn, v: torch.Tensor) -> torch.Tensor:
    b, n, inner = v.shape
    return v.view(b, n, attn.heads, inner // attn.heads).transpose(1, 2)  # (B, heads, N, d)


def queries_keys(attn, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q and K of a diffusers self-attention layer on its input ``hidden`` (B, C, H, W): (B, heads, N, d) each."""
    x = _tokens(attn, hidden)
    return _heads(attn, attn.to_q(x)), _heads(attn, attn.to_k(x))


def attention_weights(attn, hidden: torch.Tensor) -> torch.Tensor:
    """softmax(Q Kᵀ / √d) over the keys (Vaswani et al. 2017, eq. 1), d = the head width.

    :param hidden: the layer's input (B, C, H, W); N = H·W positions.
    :returns: (B, heads, N, N); row n holds query position n's weights over every key position and sums to 1.
    """
    q, k = queries_keys(attn, hidden)
    return torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)


def attention_output(attn, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The layer's output from ``weights`` (B, heads, N, N): weights · V, heads joined, to_out, + input.

    Equal to the module's own output (that is how a test checks :func:`attention_weights`).
    """
    b, c, h, w = hidden.shape
    v = _heads(attn, attn.to_v(_tokens(attn, hidden)))
    o = (weights @ v).transpose(1, 2).reshape(b, h * w, -1)  # (B, N, heads·d)
    o = attn.to_out[1](attn.to_out[0](o)).transpose(1, 2).reshape(b, c, h, w)
    if attn.residual_connection:
        o = o + hidden
    return o / attn.rescale_output_factor


@dataclass(frozen=True)
class AttentionKeys:
    """One attention layer's queries and keys at the current input, enough for any query's weights."""

    name: str
    heads: int
    grid: tuple[int, int]  # (h, w) positions; each covers (R / h) × (R / w) px of the image
    q: np.ndarray | None  # (heads, N, d) float16, None when not kept (see ``note``)
    k: np.ndarray | None
    note: str = ""


def query_weights(a: AttentionKeys, row: int, col: int) -> np.ndarray:
    """(heads, h, w) float32: query position (row, col)'s attention weights over every key position."""
    h, w = a.grid
    q = torch.from_numpy(a.q[:, row * w + col]).float()  # (heads, d)
    k = torch.from_numpy(a.k).float()  # (heads, N, d)
    logits = (k @ q.unsqueeze(-1)).squeeze(-1) * q.shape[-1] ** -0.5  # (heads, N)
    return torch.softmax(logits, dim=-1).reshape(a.heads, h, w).numpy()


# ---------------------------------------------------------------------------------
# One forward pass, recorded
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """What one forward pass left behind: small pictures and the attention layers' queries and keys."""

    parts: dict[str, Maps]  # top-level part name -> its output's most active channels
    resnets: dict[str, ResnetSteps] = field(default_factory=dict)
    attentions: dict[str, AttentionKeys] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # one sentence per thing that could not be shown, and why


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _arg(args, kwargs, i: int, name: str):
    return args[i] if len(args) > i else kwargs.get(name)


@torch.inference_mode()
def capture(
    unet,
    x_t: torch.Tensor,
    t: int,
    class_labels: torch.Tensor | None = None,
    *,
    k: int = DEFAULT_CHANNELS,
    max_side: int = MAX_PICTURE_SIDE,
    max_tokens: int = MAX_ATTENTION_TOKENS,
) -> tuple[Capture, torch.Tensor]:
    """Run the network once on x_t at timestep t with forward hooks and keep pictures, not activations.

    :param x_t: (1, C, H, W), H and W multiples of 2^(number of downsamplings).
    :param class_labels: (1,) int64 for a class-conditional model, else None.
    :returns: ``(capture, output)``; ``output`` (1, C_out, H, W) float32 on the CPU is the network's own
        prediction (ε̂, v̂ or x̂₀, as the model was trained).

    The hooks are registered for this call only and record only calls made from this thread, so
    other threads may use the same (shared, read-only) network meanwhile.
    """
    owner = threading.get_ident()
    parts: dict[str, Maps] = {}
    resnets: dict[str, ResnetSteps] = {}
    attentions: dict[str, AttentionKeys] = {}
    notes: list[str] = []
    handles = []

    def on_part(name):
        def hook(module, args, output):
            if threading.get_ident() == owner:
                parts[name] = channel_maps(_first(output), k, max_side)

        return hook

    def on_resnet(name):
        def hook(module, args, kwargs, output):
            if threading.get_ident() != owner:
                return
            x, temb = _arg(args, kwargs, 0, "input_tensor"), _arg(args, kwargs, 1, "temb")
            stages = resnet_stages(module, x, temb)
            err = float((stages[-1][1] - output).abs().max())
            in_ch = channel_maps(x, k, max_side).channels
            out_ch = channel_maps(output, k, max_side).channels
            conv1 = next(i for i, (label, _) in enumerate(stages) if label.startswith("conv"))
            pics = tuple(
                (label, channel_maps(v, k, max_side, in_ch if i < conv1 else out_ch))
                for i, (label, v) in enumerate(stages)
            )
            proj = time_projection(module, temb)
            time_rms = float(proj.float().square().mean().sqrt()) if proj is not None else float("nan")
            resnets[name] = ResnetSteps(name, pics, time_rms, pics[conv1][1].rms, err)

        return hook

    def on_attention(name):
        def hook(module, args, kwargs, output):
            if threading.get_ident() != owner:
                return
            hidden = _arg(args, kwargs, 0, "hidden_states")
            h, w = hidden.shape[-2:]
            if h * w > max_tokens:
                note = f"{h}×{w} = {h * w} positions is more than the {max_tokens} kept"
                attentions[name] = AttentionKeys(name, int(module.heads), (h, w), None, None, note)
                return
            q, kk = queries_keys(module, hidden)
            f16 = lambda v: v[0].to(torch.float16).cpu().numpy()  # noqa: E731
            attentions[name] = AttentionKeys(name, int(module.heads), (h, w), f16(q), f16(kk))

        return hook

    for name, _, m in top_parts(unet):
        handles.append(m.register_forward_hook(on_part(name)))
        inner_resnets, inner_attns = inner_modules(name, m)
        for rname, r in inner_resnets:
            if type(r).__name__ == "ResnetBlock2D" and getattr(r, "time_embedding_norm", "default") in (
                "default",
                "scale_shift",
            ):
                handles.append(r.register_forward_hook(on_resnet(rname), with_kwargs=True))
            else:
                notes.append(f"{rname} is a {type(r).__name__}; only diffusers' ResnetBlock2D is shown step by step.")
        for aname, a in inner_attns:
            why = attention_support(a)
            if why is None:
                handles.append(a.register_forward_hook(on_attention(aname), with_kwargs=True))
            else:
                notes.append(f"{aname} is not shown: {why}.")
    try:
        dev = next(unet.parameters()).device
        x = x_t.to(dev, torch.float32)
        tt = torch.tensor([int(t)], device=dev)
        if class_labels is None:
            out = unet(x, tt)
        else:
            out = unet(x, tt, class_labels=class_labels.to(dev))
    finally:
        for handle in handles:
            handle.remove()
    out = out.sample if hasattr(out, "sample") else _first(out)
    for name, a in attentions.items():
        if a.q is None:
            notes.append(f"{name}: attention weights are not kept at this resolution ({a.note}).")
    cap = Capture(parts=parts, resnets=resnets, attentions=attentions, notes=tuple(notes))
    return cap, out.float().cpu()
