"""Wall time of one training step of the bundled UNet on this machine, per numeric mode.

    python bench/train_step.py [CHECKPOINT] [--batch 32] [--res 64] [--runs 12] [--threads 2]

A step is what ``python -m model.cli.train`` does per batch: forward, v-loss, backward, gradient
clipping and an AdamW update, with the weights in float32. It is timed, alternating the modes:

* ``fp32``          contiguous tensors, float32 throughout (what ``model.training.train`` did up to now);
* ``fp32-cl``       the same in channels-last memory format;
* ``bf16``          ``torch.autocast("cpu", torch.bfloat16)`` around the forward pass and loss
                    (what ``accelerate``'s ``mixed_precision="bf16"`` does on a CPU);
* ``bf16-cl``       bf16 autocast and channels-last.

bf16 matrix units (AMX on recent Xeons) make the autocast modes fast where the CPU has them;
elsewhere they can be slower. The CPU flags that matter are printed beside the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

MODES = ("fp32", "fp32-cl", "bf16", "bf16-cl")


def cpu_flags() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return "unknown"
    keep = [f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512f"))]
    return " ".join(sorted(set(keep))) or "no avx512/amx"


def make_step(unet, mode: str, batch: int, res: int):
    """A closure that runs one training step of ``unet`` in ``mode`` on a fixed random batch."""
    cl = mode.endswith("-cl")
    fmt = torch.channels_last if cl else torch.contiguous_format
    unet.to(memory_format=fmt)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-5)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, res, res, generator=g).contiguous(memory_format=fmt)
    v = torch.randn(batch, 3, res, res, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if mode.startswith("bf16") else nullcontext()

    def step() -> float:
        with ctx:
            pred = unet(x, t).sample
            loss = ((pred.float() - v) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", default="checkpoints/photo-unet")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES))
    a = ap.parse_args(argv)
    modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode(s) {bad}; choose from {MODES}")
    torch.set_num_threads(a.threads)

    from diffusers import UNet2DModel

    unets = {m: UNet2DModel.from_pretrained(a.checkpoint, torch_dtype=torch.float32).train() for m in modes}
    steps = {m: make_step(unets[m], m, a.batch, a.res) for m in modes}
    for m in modes:
        for _ in range(a.warmup):
            steps[m]()
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(a.runs):  # alternate, so drift in machine load hits every mode alike
        for m in modes:
            t0 = time.perf_counter()
            steps[m]()
            times[m].append(time.perf_counter() - t0)

    print(f"checkpoint {a.checkpoint}; batch {a.batch} at {a.res} px; {a.threads} threads; torch {torch.__version__}")
    print(f"cpu flags: {cpu_flags()}; load average {os.getloadavg()[0]:.2f}")
    base = statistics.median(times[modes[0]])
    print(f"{'mode':<9} {'median s/step':>14} {'steps/s':>8} {'vs ' + modes[0]:>10}")
    for m in modes:
        med = statistics.median(times[m])
        print(f"{m:<9} {med:>14.3f} {1 / med:>8.2f} {base / med:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
