"""Parameter count and forward-pass latency of the bundled noise predictor.

    python bench/forward_pass.py [CHECKPOINT] [--sizes 64,128,256] [--runs 15] [--threads 2]

Prints the number of parameters and, per resolution, the median wall time of one
forward pass (batch 1, torch.inference_mode, after warm-up runs), with the weights as
``from_pretrained`` leaves them (contiguous) and as the app holds them on a CPU
(channels-last, ``model/nets/network.py``), alternating the two. Budget from issue #3:
<= 8M parameters and <= 80 ms at 128x128 on the project's 2-core CPU machine. The
number depends on what else runs on the machine: the load average is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

PARAM_BUDGET = 8_000_000
LATENCY_BUDGET_MS_128 = 80.0


def load_unet(path: str):
    from diffusers import UNet2DModel

    return UNet2DModel.from_pretrained(path, torch_dtype=torch.float32)


def bench(unet, sizes, runs: int, warmup: int = 3) -> dict[int, float]:
    unet.eval()
    out = {}
    with torch.inference_mode():
        for s in sizes:
            x = torch.randn(1, 3, s, s)
            t = torch.tensor([500])
            for _ in range(warmup):
                unet(x, t)
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                unet(x, t)
                ts.append((time.perf_counter() - t0) * 1000)
            out[s] = statistics.median(ts)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", default="checkpoints/photo-unet")
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    unet = load_unet(a.checkpoint)
    n = sum(p.numel() for p in unet.parameters())
    sizes = [int(s) for s in a.sizes.split(",")]
    print(f"checkpoint {a.checkpoint}")
    print(f"params {n:,} ({n / 1e6:.2f}M; budget {PARAM_BUDGET / 1e6:.0f}M) {'OK' if n <= PARAM_BUDGET else 'OVER'}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    for s in sizes:
        res = {}
        for fmt in (torch.contiguous_format, torch.channels_last, torch.contiguous_format, torch.channels_last):
            unet.to(memory_format=fmt)
            res.setdefault(fmt, []).append(bench(unet, [s], a.runs)[s])
        for fmt, name in ((torch.contiguous_format, "contiguous"), (torch.channels_last, "channels-last (app)")):
            ms = min(res[fmt])  # the better of two medians, each of --runs passes
            note = ""
            if s == 128:
                note = f"  (budget {LATENCY_BUDGET_MS_128:.0f} ms: {'OK' if ms <= LATENCY_BUDGET_MS_128 else 'OVER'})"
            print(f"{s}x{s} {name}: {ms:.1f} ms per forward pass (better of 2 medians of {a.runs}){note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
