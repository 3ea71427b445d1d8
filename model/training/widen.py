"""Widen the full-resolution level of a trained ``UNet2DModel`` (Net2Net-style), to keep training it.

    python -m model.cli.widen checkpoints/photo-unet --out data/runs/wide-init --first 32
    python -m model.cli.train --init-from data/runs/wide-init ...

Why: low-noise denoising (small t) is local, full-resolution work, and the first level of
the bundled UNet has only 16 channels. Training a wider network from scratch would throw
away hours of CPU training of the lower levels; instead every weight is carried over:

* each first-level channel is duplicated (new channel ``4g + p`` copies old channel
  ``2g + p % 2`` for GroupNorm group g), so GroupNorm's per-group mean and variance, and
  therefore the level's activations, are unchanged;
* weights that *read* duplicated channels are halved, so the sum over both copies equals
  the old weight (Net2Net's function-preserving widening, Chen et al. 2016);
* the sinusoidal timestep projection gets twice the frequencies; the old frequencies are
  a subset, so ``time_embedding.linear_1`` reads them at their new positions (zeros
  elsewhere) and ``time_embedding_dim`` stays as it was;
* small noise (``--noise`` × each tensor's std) on the copies breaks their symmetry, or
  they would receive identical gradients for ever.

Two places cannot be preserved exactly in diffusers' UNet2DModel: GroupNorm over the
skip-connection concatenations in the last up blocks (its group boundaries move) and the
second level's first residual shortcut (a 1×1 conv when 16 → 32 channels, identity when
32 → 32). The printed ``eps MSE vs the old model`` says how far the widened network starts
from the old one; a short fine-tune recovers it.

Shapes: conv weights are (out, in, kh, kw), linear weights (out, in), norms and biases (C,).
"""

from __future__ import annotations

import torch


def _dup_index(old: int, new: int, groups: int) -> torch.Tensor:
    """Index into the old channels for each new channel, ``new = k * old``, group-wise.

    New group g holds old group g's channels k times over, so every GroupNorm group sees
    the same values, k times: its mean and variance do not change.
    """
    k = new // old
    if new != k * old or old % groups:
        raise ValueError(f"cannot duplicate {old} -> {new} channels in {groups} groups")
    s = old // groups  # old group size
    n = torch.arange(new)
    g, p = n // (k * s), n % (k * s)
    return g * s + p % s


def _sinusoid_index(old: int, new: int) -> torch.Tensor:
    """For diffusers' flipped (cos, sin) timestep projection (``freq_shift`` 0) of width ``old`` ->
    ``new`` (= k old): the new column of each old column. Old frequency j is new frequency k j."""
    half_o, half_n = old // 2, new // 2
    k = half_n // half_o
    if half_n != k * half_o:
        raise ValueError("the new projection must be a whole multiple as wide")
    j = torch.arange(half_o)
    return torch.cat([k * j, half_n + k * j])


def _in_segments(name: str, old: int, new: int, c1: int, c1_new: int) -> list[tuple[int, int, bool]]:
    """How an input-channel dimension splits into (old width, new width, duplicated) segments.

    Plain first-level tensors: one duplicated segment. Skip concatenations [hidden | skip]:
    the hidden part keeps its width unless it is itself first-level.
    """
    if old == c1 and new == c1_new:
        return [(c1, c1_new, True)]
    if old == 2 * c1 and new == 2 * c1_new:  # [first-level hidden | first-level skip]
        return [(c1, c1_new, True), (c1, c1_new, True)]
    rest = old - c1
    if new - c1_new == rest and rest > 0:  # [wider hidden (unchanged) | first-level skip]
        return [(rest, rest, False), (c1, c1_new, True)]
    raise ValueError(f"{name}: no rule for {old} -> {new} input channels")


def _widen_dim(name, w, dim, new, c1, c1_new, groups, divide) -> torch.Tensor:
    """Widen dimension ``dim`` of ``w`` segment by segment; duplicated columns are divided by ``divide``."""
    parts, lo = [], 0
    for o, n, is_dup in _in_segments(name, w.shape[dim], new, c1, c1_new):
        seg = w.narrow(dim, lo, o)
        parts.append(seg.index_select(dim, _dup_index(o, n, groups)) / divide if is_dup else seg)
        lo += o
    return torch.cat(parts, dim=dim)


def widen_state_dict(old_sd: dict, new_sd: dict, c1: int, c1_new: int, groups: int, noise: float, seed: int = 0):
    """The widened state dict (same keys as ``new_sd``) and the names that could not be carried over."""
    g = torch.Generator().manual_seed(seed)
    _dup_index(c1, c1_new, groups)  # validates the sizes up front
    k = c1_new // c1
    out, fresh = {}, []
    for name, target in new_sd.items():
        if name not in old_sd:
            out[name] = target.clone()
            fresh.append(name)
            continue
        w = old_sd[name].float()
        if w.shape == target.shape:
            out[name] = w.clone()
            continue
        if name == "time_embedding.linear_1.weight":  # (dim, c1) -> (dim, c1_new), zeros for new frequencies
            nw = torch.zeros_like(target, dtype=torch.float32)
            nw[:, _sinusoid_index(c1, c1_new)] = w
            out[name] = nw
            continue
        # dim 0: output channels, or a norm's / bias's channels: copied, never rescaled
        if w.shape[0] != target.shape[0]:
            w = _widen_dim(name, w, 0, target.shape[0], c1, c1_new, groups, 1)
        # dim 1: input channels of a conv / linear: the k copies of a column share its weight
        if w.dim() > 1 and w.shape[1] != target.shape[1]:
            w = _widen_dim(name, w, 1, target.shape[1], c1, c1_new, groups, k)
        if tuple(w.shape) != tuple(target.shape):
            raise ValueError(f"{name}: got {tuple(w.shape)}, want {tuple(target.shape)}")
        if noise > 0 and w.dim() > 1:
            w = w + noise * w.std() * torch.randn(w.shape, generator=g)
        out[name] = w
    dropped = sorted(set(old_sd) - set(new_sd))
    return out, fresh, dropped


def widen(old_unet, first: int, noise: float = 0.01, seed: int = 0):
    """A ``UNet2DModel`` with ``block_out_channels[0] = first`` carrying ``old_unet``'s weights."""
    from diffusers import UNet2DModel

    cfg = dict(old_unet.config)
    c1 = cfg["block_out_channels"][0]
    if first % c1:
        raise ValueError(f"--first must be a multiple of {c1}")
    if cfg.get("freq_shift", 0) != 0 or cfg.get("time_embedding_type", "positional") != "positional":
        raise ValueError("only the positional timestep projection with freq_shift 0 can be widened exactly")
    if len(cfg["block_out_channels"]) > 1 and cfg["block_out_channels"][1] == c1:
        # skip concatenations [hidden | skip] would be ambiguous (both parts c1 wide)
        raise ValueError("the second level is as wide as the first: widening it again is not supported")
    cfg["block_out_channels"] = [first, *list(cfg["block_out_channels"])[1:]]
    if cfg.get("time_embedding_dim") is None:  # keep the old embedding width (diffusers: 4 x block_out_channels[0])
        cfg["time_embedding_dim"] = 4 * c1
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    new = UNet2DModel.from_config(cfg)
    sd, fresh, dropped = widen_state_dict(
        old_unet.state_dict(), new.state_dict(), c1, first, cfg["norm_num_groups"], noise, seed
    )
    new.load_state_dict(sd)
    return new, fresh, dropped
