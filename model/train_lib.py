"""The building blocks of ``python -m model.train``: UNet presets, the loss weighting over t,
the timestep sampler, the learning-rate schedule, the EMA of the weights and the checkpoint writer.

Pure torch (diffusers is imported where a UNet is built); no I/O except :func:`save_checkpoint`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

# Architecture presets. "photo-wide" is the shipped model: "photo" with its full-resolution
# level widened to 32 channels by ``python -m model.widen`` after 87 min of training (the
# time embedding keeps photo's width, 64). "tiny" is for tests.
ARCHS = {
    "tiny": dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attn=False),
    "small": dict(block_out_channels=(32, 64, 128, 128), layers_per_block=1, norm_num_groups=32, attn=False),
    "photo": dict(block_out_channels=(16, 32, 64, 128, 192), layers_per_block=1, norm_num_groups=8, attn=False),
    "photo-wide": dict(
        block_out_channels=(32, 32, 64, 128, 192),
        layers_per_block=1,
        norm_num_groups=8,
        attn=False,
        time_embedding_dim=64,
    ),
    # the class-conditional Fashion-MNIST generator: 1 channel at 32 px, self-attention at 8 px,
    # 10 classes + the "no label" index (model.fashion.NULL_LABEL) for classifier-free guidance
    "fashion": dict(
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        norm_num_groups=8,
        attn=True,
        channels=1,
        num_class_embeds=11,
    ),
    "tiny-cond": dict(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attn=True, channels=1, num_class_embeds=11
    ),
}


def build_unet(arch: str = "photo", sample_size: int = 64):
    """A ``UNet2DModel`` from a preset name: 3 in / 3 out channels unless the preset says ``channels``;
    class-conditional (a label embedding added to the time embedding) when it sets ``num_class_embeds``."""
    from diffusers import UNet2DModel

    a = dict(ARCHS[arch])
    attn = a.pop("attn")
    channels = a.pop("channels", 3)
    n = len(a["block_out_channels"])
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if attn:  # self-attention at the lowest resolution only
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        attention_head_dim=min(32, a["block_out_channels"][-1]) if attn else None,
        **a,
    )


def loss_weight(spec: str, snr_t: torch.Tensor) -> torch.Tensor:
    """Per-sample weight on the ε-MSE (see module docstring). ``snr_t`` has shape (B,)."""
    inv = 1.0 / snr_t
    if spec == "eps":
        return torch.ones_like(snr_t)
    if spec == "v":
        return 1.0 + inv
    if spec.startswith("trunc:"):
        return 1.0 + inv.clamp(max=float(spec.split(":", 1)[1]))
    raise ValueError(f"unknown --loss-weight {spec!r}")


class EMA:
    """Exponential moving average of a model's parameters (and a copy of its buffers)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        shadow, live = [], []
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                shadow.append(self.shadow[k])
                live.append(v.detach().float())
            else:
                self.shadow[k].copy_(v)
        # one fused update for all float tensors (a per-tensor loop is ~600 kernel launches a step on a GPU)
        torch._foreach_lerp_(shadow, live, 1 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, sd: dict) -> None:
        self.decay, self.num_updates = sd["decay"], sd["num_updates"]
        # keep each shadow tensor on the device of the live one (the state may be loaded with map_location="cpu")
        self.shadow = {k: v.to(self.shadow[k].device).clone() for k, v in sd["shadow"].items()}


def save_checkpoint(out: Path, unet_config: dict, ema: EMA, sched, dtype: str = "float16") -> None:
    """Write the diffusers folder of the EMA weights, stored as ``dtype`` to keep the folder small, with
    :func:`model.checkpoint_io.save_model`. Load it with :func:`model.network.load_model` (or
    ``UNet2DModel.from_pretrained(out, torch_dtype=torch.float32)``)."""
    from diffusers import UNet2DModel

    from model.checkpoint_io import save_model

    m = UNet2DModel.from_config(unet_config)
    m.load_state_dict({k: v.to(torch.float32) for k, v in ema.shadow.items()})
    save_model(m.to(getattr(torch, dtype)), sched, out)


def parse_t_focus(spec: str) -> tuple[float, int]:
    """``"P:TMAX"`` -> (P, TMAX), checked once when the arguments are parsed."""
    try:
        p_str, tmax_str = spec.split(":", 1)
        p, tmax = float(p_str), int(tmax_str)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--t-focus wants P:TMAX, e.g. 0.5:450, got {spec!r}") from None
    if not (0.0 <= p <= 1.0 and tmax >= 1):
        raise argparse.ArgumentTypeError(f"--t-focus wants 0 <= P <= 1 and TMAX >= 1, got {spec!r}")
    return p, tmax


def sample_t(n: int, T: int, focus: tuple[float, int] | None, generator=None, device=None) -> torch.Tensor:
    """Training timesteps, shape (n,), int64 in [0, T).

    ``focus=None`` is uniform over all T. ``focus=(P, TMAX)`` (see :func:`parse_t_focus`)
    draws each t from ``[0, TMAX)`` with probability P and uniformly from ``[0, T)``
    otherwise, so the low-noise steps (where a denoiser's fine detail is won or lost) get
    more of the gradient budget. Nothing is reweighted: this *is* a weighting over t.
    """
    t = torch.randint(0, T, (n,), generator=generator, device=device)
    if focus is None:
        return t
    p, tmax = focus
    if tmax > T:
        raise ValueError(f"--t-focus TMAX must be at most T = {T}, got {tmax}")
    low = torch.randint(0, tmax, (n,), generator=generator, device=device)
    pick = torch.rand(n, generator=generator, device=device) < p
    return torch.where(pick, low, t)


def lr_at(a, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / max(1, a.warmup))
    if a.lr_decay == "constant":
        return a.lr * warm
    return a.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
