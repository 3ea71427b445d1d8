"""The command line of :mod:`model.training.widen`: Widen a trained UNet's full-resolution level.

python -m model.cli.widen --help
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from model.training.widen import widen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Widen a UNet2DModel's first level, carrying its weights over.")
    ap.add_argument("checkpoint", type=Path, help="diffusers folder (config.json + safetensors + scheduler)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--first", type=int, default=32, help="new block_out_channels[0]")
    ap.add_argument("--noise", type=float, default=0.01, help="symmetry-breaking noise, x each tensor's std")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    from diffusers import UNet2DModel

    from model.diffusion.forward import q_sample
    from model.nets.network import load_model

    old = UNet2DModel.from_pretrained(str(a.checkpoint), torch_dtype=torch.float32).eval()
    new, fresh, dropped = widen(old, a.first, a.noise, a.seed)
    new.eval()
    a.out.mkdir(parents=True, exist_ok=True)
    new.save_pretrained(str(a.out), safe_serialization=True)
    sched = a.checkpoint / "scheduler_config.json"
    if sched.is_file():
        (a.out / "scheduler_config.json").write_text(sched.read_text())
    n_old = sum(p.numel() for p in old.parameters())
    n_new = sum(p.numel() for p in new.parameters())
    print(f"{a.checkpoint}: {n_old / 1e6:.3f}M params -> {a.out}: {n_new / 1e6:.3f}M params")
    print(f"fresh (not carried over): {fresh or 'none'}; dropped: {dropped or 'none'}")

    # how far the widened network starts from the old one, on noised smooth pictures
    m_old, m_new = load_model(str(a.checkpoint)), load_model(str(a.out))
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    x0 = torch.stack([torch.sin(3 * xx), torch.cos(2 * yy), xx * yy]).unsqueeze(0)
    for t in (25, 100, 400, 800):
        x_t, eps = q_sample(m_old.schedule, x0, t, generator=gen)  # eq. 4
        e_old, e_new = m_old.eps(x_t, t), m_new.eps(x_t, t)
        print(
            f"t={t}: eps MSE vs the old model {float(((e_new - e_old) ** 2).mean()):.2e}; "
            f"old eps-MSE {float(((e_old - eps) ** 2).mean()):.4f}, new {float(((e_new - eps) ** 2).mean()):.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
