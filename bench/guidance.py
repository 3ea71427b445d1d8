"""Benchmark: what classifier-free guidance does to the bundled Fashion generator, measured with the judge.

    .venv/bin/python bench/guidance.py [--per-class 20] [--steps 50] [--ws 0 0.5 1 2] [--recipes plain interval
        rescale] [--interval 82 578] [--rescale 0.7] [--seed 0] [--threads 2] [--csv out.csv]

For every recipe and guidance scale w, ``--per-class`` samples of each of the 10 classes are generated from pure
noise (DDIM η = 0, ``--steps`` steps, the same seed for every row, so every row starts from the same noise) with
:func:`model.images.generate.trajectory`'s recipe, and the judge (``checkpoints/fashion-judge``, trained on the
training split only) classifies the central 28 × 28 px of each. Printed per row:

* **agreement %**: the share the judge classifies as the class asked for (real test images: about 93 %);
* **mean pixel**: the samples' mean grey level in 0..255 (real Fashion-MNIST test images: about 73); guidance that
  overshoots makes them bright;
* **seconds** for the row.

The recipes (:mod:`model.diffusion.guidance`):

* ``plain``: ε̃ = ε̂(x_t, y) + w (ε̂(x_t, y) − ε̂(x_t, ∅)) at every step (what the app does);
* ``interval``: the same, only for ``lo <= t <= hi`` (default 0..300, what ``checkpoints/fashion-unet/
  classes.json`` names; 82..578 is σ = √((1−ᾱ)/ᾱ) in (0.28, 5.42], the interval of Kynkäänniemi et al. 2024 mapped
  onto the linear schedule); outside it the plain conditional ε̂;
* ``rescale``: plain CFG with the guided prediction's std brought back towards the conditional one's
  (Lin et al. 2024, φ = ``--rescale``).

Agreement is a share of 10 × per-class samples: with 20 per class one sample is 0.5 points, and the binomial
standard error near 80 % is about 2.8 points, so differences of a few points are noise. The real figures:
``--per-class 50`` (about 30 min on an idle 2-core CPU: 10 rows × 500 samples × 50 steps).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.diffusion.guidance import guided_eps_model
from model.diffusion.trajectory import make_timesteps, sample_trajectory
from model.evaluation.gen_metrics import agreement
from model.evaluation.judge import load_judge
from model.images.tensors import tensor_to_uint8
from model.nets.hub import FASHION_MODEL
from model.nets.network import load_model
from model.serving import process

ROOT = Path(__file__).resolve().parent.parent
JUDGE = ROOT / "checkpoints" / "fashion-judge"
DEFAULT_INTERVAL = (0, 300)  # the Fashion generator's own (classes.json); try 82 578 for Kynkäänniemi et al.'s


@dataclass(frozen=True)
class Row:
    recipe: str
    w: float
    n: int
    agreement: float  # %
    mean_pixel: float  # 0..255
    seconds: float


def recipe_args(recipe: str, interval: tuple[int, int], rescale: float) -> dict:
    """The keyword arguments of :func:`guided_eps_model` for a recipe's name."""
    if recipe == "plain":
        return {"interval": (0, 10**9)}  # every t, whatever interval the model's classes.json names
    if recipe == "interval":
        return {"interval": interval}
    if recipe == "rescale":
        return {"rescale": rescale}
    raise ValueError(f"unknown recipe {recipe!r}: use plain, interval or rescale")


def generate(model, labels: list[int], w: float, steps: int, seed: int, batch: int, **recipe) -> np.ndarray:
    """Final samples, uint8 (N, 28, 28): the central 28 px of the generator's 32 px (it pads Fashion-MNIST by 2)."""
    g = torch.Generator().manual_seed(seed)
    ts = make_timesteps(model.schedule.T - 1, steps)
    out = []
    with torch.inference_mode():
        for a in range(0, len(labels), batch):
            y = torch.tensor(labels[a : a + batch], dtype=torch.long)
            eps_model = guided_eps_model(model, y, float(w), **recipe)
            x = torch.randn((len(y), model.channels, model.resolution, model.resolution), generator=g)
            (last,) = deque(sample_trajectory(eps_model, model.schedule, x, ts, "ddim", 0.0, g), maxlen=1)
            out.extend(tensor_to_uint8(last.x_prev[i])[..., 0] for i in range(len(y)))
    return np.stack(out)[:, 2:30, 2:30].copy()


def measure(model, judge, recipe: str, w: float, args) -> Row:
    labels = [c for c in range(len(model.classes)) for _ in range(args.per_class)]
    t0 = time.perf_counter()
    images = generate(
        model, labels, w, args.steps, args.seed, args.batch, **recipe_args(recipe, tuple(args.interval), args.rescale)
    )
    seconds = time.perf_counter() - t0
    agree = 100.0 * agreement(judge.predict(images), np.array(labels))
    return Row(recipe, w, len(labels), agree, float(images.mean()), seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, default=20, help="samples per class per row (default 20)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50, the app's)")
    p.add_argument("--ws", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0], help="guidance scales")
    p.add_argument("--recipes", nargs="+", default=["plain", "interval", "rescale"])
    p.add_argument("--interval", type=int, nargs=2, default=list(DEFAULT_INTERVAL), metavar=("LO", "HI"))
    p.add_argument("--rescale", type=float, default=0.7, help="CFG rescale φ (default 0.7, Lin et al.'s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    args = p.parse_args(argv)
    for r in args.recipes:
        recipe_args(r, (0, 0), 0.0)  # an unknown recipe fails before any work
    process.configure_allocator()
    process.configure_threads(args.threads)
    model = load_model(str(FASHION_MODEL))
    judge = load_judge(JUDGE)
    print(f"Fashion generator, {args.per_class} per class, {args.steps} DDIM steps, seed {args.seed}")
    print(f"{'recipe':<10}{'w':>5}{'n':>6}{'agreement %':>13}{'mean pixel':>12}{'seconds':>9}")
    rows = []
    for recipe in args.recipes:
        for w in args.ws:
            if w == 0 and recipe != args.recipes[0]:
                continue  # w = 0 is the same plain conditional model for every recipe
            row = measure(model, judge, recipe, w, args)
            rows.append(row)
            print(
                f"{row.recipe:<10}{row.w:>5g}{row.n:>6}{row.agreement:>13.1f}{row.mean_pixel:>12.1f}{row.seconds:>9.1f}",
                flush=True,
            )
    if args.csv:
        with args.csv.open("w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(Row.__dataclass_fields__)
            wr.writerows(
                [r.recipe, r.w, r.n, f"{r.agreement:.2f}", f"{r.mean_pixel:.2f}", f"{r.seconds:.2f}"] for r in rows
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
