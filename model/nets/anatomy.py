"""The anatomy of a diffusers ``UNet2DModel``: its parts, their shapes and sizes, and its embeddings.

Pure torch (no streamlit, no plotly). :func:`architecture` reads the parts from the model's own config
and modules: ``"conv_in"``, ``"down 0"`` … ``"down n-1"``, ``"mid"``, ``"up 0"`` … ``"up n-1"``,
``"conv_out"`` (GroupNorm → SiLU → conv), and inside a block ``"down 1 / resnet 0"``,
``"mid / attention 0"``; with the tensor shape of each at a working resolution R (``(C, H, W)`` of one
image), its parameter count and the skip connections. :func:`sinusoidal_embedding`,
:func:`time_features` and :func:`embeddings` give what the network makes of t and of a class label.
What flows through the parts on one input is recorded by :mod:`model.nets.probe`.

Timesteps follow :mod:`model.diffusion.schedule`: t in 0 … T-1, index 0 is the first noising step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# block classes whose shapes this module derives from the config (UNet2DModel's own rules)
KNOWN_BLOCKS = frozenset({"DownBlock2D", "AttnDownBlock2D", "UNetMidBlock2D", "UpBlock2D", "AttnUpBlock2D"})


# ---------------------------------------------------------------------------------
# The architecture, from the model's own config and modules
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One top-level part of the U-Net.

    ``in_shape`` / ``out_shape``: (C, H, W) at the working resolution, from the config (None when the
    block type is unknown; the forward pass then tells). ``resample``: "↓2" (halves H and W), "↑2" or "".
    """

    name: str
    kind: str  # "in", "down", "mid", "up", "out"
    class_name: str
    params: int
    in_shape: tuple[int, int, int] | None
    out_shape: tuple[int, int, int] | None
    resnets: tuple[str, ...] = ()
    attentions: tuple[str, ...] = ()
    heads: int = 0  # attention heads (of the first attention layer), 0 without attention
    resample: str = ""

    @property
    def known(self) -> bool:
        return self.kind in ("in", "out") or self.class_name in KNOWN_BLOCKS


@dataclass(frozen=True)
class Architecture:
    """The parts in the order of the forward pass, the skip connections, and the embeddings' sizes."""

    parts: tuple[Part, ...]
    skips: tuple[tuple[str, str, int], ...]  # (from part, to part, how many tensors)
    time_params: int  # time_proj + time_embedding (the time MLP)
    label_params: int  # class_embedding, 0 for an unconditional model
    time_kind: str  # "sinusoidal", or the class name of another time projection
    time_dim: int  # width of the sinusoidal features
    emb_dim: int  # width of the time MLP's output (what every ResNet block receives)
    total_params: int

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)


def _params(*modules) -> int:
    return sum(p.numel() for m in modules if m is not None for p in m.parameters())


def top_parts(unet) -> list[tuple[str, str, torch.nn.Module]]:
    """``(name, kind, module)`` for conv_in, the down blocks, the mid block, the up blocks and conv_out."""
    out = [("conv_in", "in", unet.conv_in)]
    out += [(f"down {i}", "down", b) for i, b in enumerate(unet.down_blocks)]
    if getattr(unet, "mid_block", None) is not None:
        out.append(("mid", "mid", unet.mid_block))
    out += [(f"up {i}", "up", b) for i, b in enumerate(unet.up_blocks)]
    out.append(("conv_out", "out", unet.conv_out))
    return out


def inner_modules(name: str, block: torch.nn.Module) -> tuple[list, list]:
    """The ResNet blocks and attention layers inside a block, in forward order, with their names.

    :returns: ``([(name, module), ...] resnets, [(name, module), ...] attentions)``. A "resnet" is any
        module whose class name contains "Resnet" (only diffusers' ``ResnetBlock2D`` can be shown step by step).
    """
    from diffusers.models.attention_processor import Attention

    resnets, attns = [], []
    for path, m in block.named_modules():
        if not path:  # the block itself (e.g. a ResnetDownsampleBlock2D)
            continue
        if isinstance(m, Attention):
            attns.append((f"{name} / attention {len(attns)}", m))
        elif "Resnet" in type(m).__name__:
            resnets.append((f"{name} / resnet {len(resnets)}", m))
    return resnets, attns


def config_shapes(config, resolution: int) -> dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """``{part name: (in_shape, out_shape)}`` that UNet2DModel's config implies at ``resolution`` px.

    Rules of ``UNet2DModel``: conv_in maps in_channels to block_out_channels[0]; down block i outputs
    block_out_channels[i] and halves H and W unless it is the last; the mid block keeps the shape; up
    block i outputs reversed(block_out_channels)[i] and doubles H and W unless it is the last; conv_out
    maps block_out_channels[0] to out_channels.
    """
    boc = list(config["block_out_channels"])
    n, r = len(boc), int(resolution)
    shapes: dict[str, tuple] = {"conv_in": ((config["in_channels"], r, r), (boc[0], r, r))}
    c = boc[0]
    for i in range(n):
        last = i == n - 1
        shapes[f"down {i}"] = ((c, r, r), (boc[i], r if last else r // 2, r if last else r // 2))
        c, r = boc[i], r if last else r // 2
    if config.get("mid_block_type", "UNetMidBlock2D") is not None:
        shapes["mid"] = ((c, r, r), (c, r, r))
    rev = boc[::-1]
    for i in range(n):
        last = i == n - 1
        shapes[f"up {i}"] = ((c, r, r), (rev[i], r if last else 2 * r, r if last else 2 * r))
        c, r = rev[i], r if last else 2 * r
    shapes["conv_out"] = ((c, r, r), (config["out_channels"], r, r))
    return shapes


def skip_connections(unet) -> list[tuple[str, str, int]]:
    """``(from, to, count)``: which down-path tensors each up block concatenates (UNet2DModel's stack).

    conv_in's output and every down block's ResNet outputs and downsampled output are pushed on a
    stack; up block j pops as many as it has ResNet blocks (one per ResNet, concatenated to its input).
    """
    stack = ["conv_in"]
    for i, block in enumerate(unet.down_blocks):
        stack += [f"down {i}"] * (
            len(getattr(block, "resnets", ())) + (getattr(block, "downsamplers", None) is not None)
        )
    edges: dict[tuple[str, str], int] = {}
    for j, block in enumerate(unet.up_blocks):
        k = len(getattr(block, "resnets", ()))
        taken, stack = stack[len(stack) - k :], stack[: len(stack) - k]
        for src in taken:
            edges[(src, f"up {j}")] = edges.get((src, f"up {j}"), 0) + 1
    return [(a, b, n) for (a, b), n in edges.items()]


def architecture(unet, resolution: int) -> Architecture:
    """The U-Net's parts with shapes at ``resolution`` px (from the config) and parameter counts."""
    from diffusers.models.embeddings import Timesteps

    config = unet.config
    known = all(type(m).__name__ in KNOWN_BLOCKS for _, kind, m in top_parts(unet) if kind not in ("in", "out"))
    shapes = config_shapes(config, resolution) if known else {}
    parts = []
    for name, kind, m in top_parts(unet):
        resnets, attns = inner_modules(name, m)
        params = _params(m, unet.conv_norm_out) if kind == "out" else _params(m)
        resample = ""
        if getattr(m, "downsamplers", None) is not None:
            resample = "↓2"
        elif getattr(m, "upsamplers", None) is not None:
            resample = "↑2"
        in_shape, out_shape = shapes.get(name, (None, None))
        parts.append(
            Part(
                name=name,
                kind=kind,
                class_name="GroupNorm → SiLU → Conv2d" if kind == "out" else type(m).__name__,
                params=params,
                in_shape=in_shape,
                out_shape=out_shape,
                resnets=tuple(n for n, _ in resnets),
                attentions=tuple(n for n, _ in attns),
                heads=int(attns[0][1].heads) if attns else 0,
                resample=resample,
            )
        )
    tp = unet.time_proj
    emb_dim = unet.time_embedding.linear_2.out_features if hasattr(unet.time_embedding, "linear_2") else 0
    return Architecture(
        parts=tuple(parts),
        skips=tuple(skip_connections(unet)),
        time_params=_params(unet.time_proj, unet.time_embedding),
        label_params=_params(getattr(unet, "class_embedding", None)),
        time_kind="sinusoidal" if isinstance(tp, Timesteps) else type(tp).__name__,
        time_dim=int(tp.num_channels) if isinstance(tp, Timesteps) else 0,
        emb_dim=int(emb_dim),
        total_params=_params(unet),
    )


# ---------------------------------------------------------------------------------
# The time (and label) embedding
# ---------------------------------------------------------------------------------


def sinusoidal_embedding(
    t: torch.Tensor,
    dim: int,
    flip_sin_to_cos: bool = False,
    downscale_freq_shift: float = 1.0,
    scale: float = 1.0,
    max_period: float = 10000.0,
) -> torch.Tensor:
    """The sinusoidal timestep features (Ho et al. 2020, App. B, after Vaswani et al. 2017, §3.5).

    With half = dim // 2 and i = 0 … half-1: frequency ω_i = max_period^(−i / (half − shift)), and the
    features of t are [sin(scale · t ω_i) for all i, cos(scale · t ω_i) for all i] (cos first when
    ``flip_sin_to_cos``), zero-padded to ``dim`` when dim is odd. Low i: fast waves; high i: slow ones.

    :param t: (N,) timesteps (ints or floats).
    :returns: (N, dim) float32.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - downscale_freq_shift))
    angles = scale * (t.reshape(-1, 1).float() * freqs.reshape(1, -1))  # (N, half)
    sin, cos = torch.sin(angles), torch.cos(angles)
    emb = torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)
    return F.pad(emb, (0, dim % 2))


def time_features(unet, ts: torch.Tensor) -> torch.Tensor:
    """(N, dim) features of timesteps ``ts`` (N,), as the network's ``time_proj`` makes them.

    A sinusoidal ``Timesteps`` projection is computed by :func:`sinusoidal_embedding` with its own
    settings; any other projection (Fourier, learned) is asked directly.
    """
    from diffusers.models.embeddings import Timesteps

    tp = unet.time_proj
    if isinstance(tp, Timesteps):
        return sinusoidal_embedding(ts, tp.num_channels, tp.flip_sin_to_cos, tp.downscale_freq_shift, tp.scale)
    with torch.inference_mode():
        return tp(ts.to(next(unet.parameters()).device)).float().cpu()


@dataclass(frozen=True)
class Embeddings:
    """What the network makes of t (and of the class label): 1-D float32 tensors for one image."""

    features: torch.Tensor  # (dim,) sinusoidal features of t
    time: torch.Tensor  # (D,) the time MLP's output, time_embedding(features)
    label: torch.Tensor | None  # (D,) class_embedding(y), None for an unconditional model
    total: torch.Tensor  # (D,) time + label: what every ResNet block receives


@torch.inference_mode()
def embeddings(unet, t: int, class_labels: torch.Tensor | None = None) -> Embeddings:
    """The time and label embeddings at timestep ``t``, computed as ``UNet2DModel.forward`` does.

    :param class_labels: (1,) int64 for a class-conditional model, else None.
    """
    dev = next(unet.parameters()).device
    tt = torch.tensor([int(t)], device=dev)
    feats = unet.time_proj(tt).to(unet.dtype)
    time = unet.time_embedding(feats)
    label = None
    if getattr(unet, "class_embedding", None) is not None and class_labels is not None:
        y = class_labels.to(dev)
        if unet.config.get("class_embed_type") == "timestep":
            y = unet.time_proj(y)
        label = unet.class_embedding(y).to(time.dtype)
    total = time if label is None else time + label
    cpu = lambda v: v[0].float().cpu()  # noqa: E731
    return Embeddings(cpu(feats), cpu(time), None if label is None else cpu(label), cpu(total))
