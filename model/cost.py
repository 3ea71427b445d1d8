"""What one sampling step of a model costs: MACs counted exactly, seconds measured.

Used before a long run to say what it will take ("50 steps: about 8 min") and to
default to fewer steps for big models. Pure: no Streamlit or Plotly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.network import LoadedModel


@dataclass(frozen=True)
class CostEstimate:
    """What one network evaluation (one sampling step) costs at ``resolution`` px, batch ``batch``."""

    resolution: int
    batch: int
    macs_per_step: int  # multiply-accumulates, counted by torch.utils.flop_counter (FLOPs / 2)
    seconds_per_step: float  # from a timed forward (see estimate_cost)
    device: str

    def seconds(self, num_steps: int) -> float:
        return self.seconds_per_step * num_steps

    def duration(self, num_steps: int) -> str:
        """E.g. 'about 8 min' for ``num_steps`` steps."""
        s = self.seconds(num_steps)
        if s < 1:
            return "under a second"
        return f"about {s:.0f} s" if s < 90 else f"about {s / 60:.0f} min"

    def describe(self, num_steps: int) -> str:
        """E.g. '50 steps × 248.5 GMAC: about 8 min on cpu'."""
        return f"{num_steps} steps × {self.macs_per_step / 1e9:.1f} GMAC: {self.duration(num_steps)} on {self.device}"


def count_macs(unet: torch.nn.Module, resolution: int, batch: int = 1, in_channels: int | None = None) -> int:
    """MACs of one forward pass of ``unet`` at ``resolution`` px (FLOPs / 2, per FlopCounterMode).

    A diffusers model is rebuilt from its config on the ``meta`` device, so nothing is
    computed and no memory is used; any other module runs one real forward on zeros.
    Counts convolutions, matmuls and attention (elementwise ops and norms are not counted).
    """
    from torch.utils.flop_counter import FlopCounterMode

    net, dev = unet, next(iter(unet.parameters()), torch.empty(0)).device
    config = getattr(unet, "config", None)
    if config is not None and hasattr(type(unet), "from_config"):
        with torch.device("meta"):
            net, dev = type(unet).from_config(config), torch.device("meta")
    in_channels = in_channels or int(getattr(config, "in_channels", 3))
    x = torch.zeros(batch, in_channels, resolution, resolution, device=dev)
    t = torch.full((batch,), 10, dtype=torch.long, device=dev)
    kw = {"class_labels": torch.zeros(batch, dtype=torch.long, device=dev)} if getattr(config, "num_class_embeds", None) else {}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, t, **kw)
    return int(counter.get_total_flops() // 2)


def estimate_cost(model: LoadedModel, resolution: int | None = None, batch: int = 1) -> CostEstimate:
    """MACs and seconds per step for ``model`` at ``resolution`` (default: native), cached per model.

    Seconds: at most 64 px the step is simply timed (after a warm-up forward). Above that,
    two small forwards are timed (64 and 32 px) and extrapolated with
    ``seconds = a + b * MACs``: a step also pays a fixed cost (reading every weight, e.g.
    455 MB for a 256-px Google DDPM) that does not grow with the image. On this project's
    busy 2-core CPU it said 19 s for a 256-px step that took 17 s, after about 6 s of
    probing. The first call per (resolution, batch) pays the probing; later calls are free.
    """
    res = int(resolution or model.resolution)
    key = (res, batch)
    if key in model._costs:
        return model._costs[key]
    m = model.size_multiple
    macs = count_macs(model.unet, res, batch)
    hi = max(m, min(res, 64) // m * m)
    lo = hi // 2 // m * m
    if hi == res or lo < m:
        _timed(model, hi, batch)  # warm-up: the first call pays one-off setup (allocator, conv kernels)
        seconds = _timed(model, hi, batch) * macs / max(count_macs(model.unet, hi, batch), 1)
    else:
        _timed(model, lo, batch)
        t_lo, t_hi = _timed(model, lo, batch), _timed(model, hi, batch)
        m_lo, m_hi = count_macs(model.unet, lo, batch), count_macs(model.unet, hi, batch)
        slope = max((t_hi - t_lo) / max(m_hi - m_lo, 1), 0.5 * t_hi / max(m_hi, 1))  # floor against timing noise
        seconds = t_hi + slope * (macs - m_hi)
    cost = CostEstimate(res, batch, macs, seconds, model.device)
    model._costs[key] = cost
    return cost


def _timed(model: LoadedModel, size: int, batch: int) -> float:
    """Wall-clock seconds of one forward of ``model`` on a (batch, C, size, size) input."""
    x = torch.zeros(batch, model.channels, size, size)
    t = torch.full((batch,), 10, dtype=torch.long)
    start = time.perf_counter()
    model.raw(x, t)
    if model.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def suggested_steps(cost: CostEstimate, budget_s: float = 20.0, full: int = 50, minimum: int = 10) -> int:
    """How many sampling steps fit in ``budget_s``: ``full`` when cheap, down to ``minimum`` for 256-px models on a CPU."""
    if cost.seconds_per_step <= 0:
        return full
    return int(max(minimum, min(full, budget_s // cost.seconds_per_step)))
