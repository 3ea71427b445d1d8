"""How long does the whole bound take? All T terms of ``model.diffusion.likelihood.vb_terms`` at 64 px.

Uses the bundled model (checkpoints/photo-unet) if it is there; otherwise says so and
times a stand-in with random weights: the architecture of checkpoints/photo-unet/config.json
if that exists, else the shipped "photo" preset of ``model.training.train``, else the tiny test UNet.
For each batch size (timesteps per network call) it prints the wall time for all T terms,
ms per term and the bits/dim, plus the 50-t estimate the page computes by default.

    .venv/bin/python bench/likelihood.py [--res 64] [--batch-sizes 10,50,100] [--threads N] [--image PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from model.diffusion import likelihood as lk
from model.diffusion.schedule import make_schedule
from model.images.tensors import load_image
from model.nets.checkpoint_io import ModelLoadError, tiny_unet
from model.nets.hub import BUNDLED_MODEL
from model.nets.network import LoadedModel, load_model

ROOT = Path(__file__).resolve().parent.parent


def pick_model(res: int) -> tuple[LoadedModel, str]:
    """The bundled model, or a random-weight stand-in of the same architecture (and what was used)."""
    try:
        m = load_model(None)
        return m, f"bundled model {m.source}"
    except ModelLoadError as exc:
        print(f"note: the bundled model is not usable ({exc})")
    cfg = BUNDLED_MODEL / "config.json"
    unet, what = None, ""
    if cfg.is_file():
        from diffusers import UNet2DModel

        unet = UNet2DModel.from_config(json.loads(cfg.read_text()))
        what = f"stand-in: random weights, architecture of {cfg}"
    else:
        try:
            from model.training.train_lib import build_unet

            unet = build_unet("photo", res)
            what = 'stand-in: random weights, the shipped "photo" preset of model.training.train'
        except Exception as exc:  # noqa: BLE001 - any failure: fall back to tiny
            print(f"note: no photo preset ({exc})")
    if unet is None:
        unet = tiny_unet(res)
        what = "stand-in: the tiny test UNet (random weights)"
    unet.eval().requires_grad_(False)
    return LoadedModel(unet=unet, schedule=make_schedule("linear"), resolution=res, source=what), what


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch-sizes", default="10,50,100")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--image", default=str(ROOT / "assets" / "astronaut.jpg"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, what = pick_model(args.res)
    x0 = load_image(Path(args.image).read_bytes(), args.res)
    T = model.schedule.T
    print(f"model: {what}; {model.num_parameters / 1e6:.2f} M params; T = {T}; schedule {model.schedule.name}")
    print(f"image: {Path(args.image).name} at {args.res} px; torch threads {torch.get_num_threads()}")
    with torch.inference_mode():  # warm-up
        model.eps(x0.expand(2, -1, -1, -1), torch.tensor([10, 500]))

    start = time.perf_counter()
    est = lk.estimate_bpd(
        model.eps, model.schedule, x0, 50, torch.Generator().manual_seed(args.seed), proposal="importance"
    )
    secs = time.perf_counter() - start
    print(f"50-t estimate + L_0 (page default): {secs:6.1f} s  -> {est.total_bpd:.3f} ± {est.stderr:.3f} bits/dim")

    for bs in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
        start = time.perf_counter()
        res = lk.vb_terms(model.eps, model.schedule, x0, None, torch.Generator().manual_seed(args.seed), batch_size=bs)
        secs = time.perf_counter() - start
        print(
            f"all {T} terms, batch {bs:4d}: {secs:6.1f} s  ({1000 * secs / T:6.1f} ms/term)  "
            f"-> {res.total_bpd:.3f} bits/dim"
        )


if __name__ == "__main__":
    main()
