"""Benchmark: "one of each class" with the Fashion generator, as the app's button and the command run it.

    .venv/bin/python bench/generate.py [--model fashion] [--steps 50] [--guidance W] [--repeats 5] [--threads 2]

Ten samples (one per class), 50 DDIM steps, with classifier-free guidance (w = 1 by default), at the
model's 32 px, through :func:`model.images.generate.trajectory` (the same generator the app and
``python -m model.cli.generate`` use; every step's x_t, guided eps_hat and x0_hat are produced). Two ways of
getting the two predictions per step are timed side by side, alternating within each repeat:

* **batched**: ε̂(x_t, y) and ε̂(x_t, ∅) from one forward pass on the doubled batch (what ships);
* **two passes**: one forward pass for each (for comparison only).

Also times one step of a single sample with guidance (the Reverse trajectory page's run), and the batched
run once more with the model loaded in plain fp32 (``DIFFUSION_LENS_PRECISION=fp32``), beside the
arithmetic the app picks at load (model/serving/precision.py: the fastest path that passes the fidelity guard).
Prints the median seconds per run and the ratios; the issue's target is at most 3 s for the batched run on the
project's 2-core CPU. Don't run it while a training job runs: both would be slowed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from model.diffusion.guidance import GuidedEps, cfg_combine
from model.images.generate import DEFAULT_STEPS, trajectory
from model.nets.network import load_model, precision_label
from model.serving import process
from model.serving.service import Serving

ROOT = Path(__file__).resolve().parent.parent


def run_batched(model, labels, w, steps, seed) -> float:
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        recs = list(trajectory(model, labels, w, steps, "ddim", 0.0, g))
    assert len(recs) == steps and recs[-1].x_prev.shape[0] == len(labels)
    return time.perf_counter() - t0


def run_two_passes(model, labels, w, steps, seed) -> float:
    """The same trajectory, but ε̂(x_t, y) and ε̂(x_t, ∅) from two separate forward passes."""
    import model.diffusion.guidance as guidance

    def two_pass(m, x_t, t, y, scale):
        cond, uncond = m.eps(x_t, t, y), m.eps(x_t, t, m.null_label)
        return GuidedEps(cond, uncond, cfg_combine(cond, uncond, scale))

    original, guidance.guided_eps = guidance.guided_eps, two_pass  # guided_eps_model looks it up per call
    try:
        return run_batched(model, labels, w, steps, seed)
    finally:
        guidance.guided_eps = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="fashion")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument(
        "--guidance",
        type=float,
        default=1.0,
        help="w > 0: guided, two predictions per step (speed does not depend on w)",
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the app's setting)")
    a = ap.parse_args()
    process.configure_allocator()
    threads = process.configure_threads(a.threads)
    model_fp32 = load_model(a.model)  # the library default: plain fp32
    model = Serving(policy="auto").prepare(load_model(a.model))  # what the app does at its edge
    print(f"arithmetic the app picks at load: {precision_label(model)} (fp32 row below: {precision_label(model_fp32)})")
    if not model.guidable:
        raise SystemExit(f"error: {a.model} is not a class-conditional model with a 'no label' index")
    w = a.guidance
    labels = list(range(len(model.classes)))
    print(
        f"{model.source}: {model.num_parameters / 1e6:.2f}M parameters, {model.resolution} px, {len(labels)} samples, "
        f"{a.steps} DDIM steps, guidance w = {w:g}; torch {torch.__version__}, {threads} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    run_batched(model, labels, w, 3, 0)  # warm-up
    run_two_passes(model, labels, w, 3, 0)
    run_batched(model_fp32, labels, w, 3, 0)
    one = [run_batched(model, [7], w, a.steps, 0)]
    batched, two, fp32 = [], [], []
    for r in range(a.repeats):
        batched.append(run_batched(model, labels, w, a.steps, r))
        two.append(run_two_passes(model, labels, w, a.steps, r))
        one.append(run_batched(model, [7], w, a.steps, r))
        fp32.append(run_batched(model_fp32, labels, w, a.steps, r))
    mb, mt, mo, mf = (statistics.median(v) for v in (batched, two, one, fp32))
    print(f"one of each class, batched cond+uncond (ships): median {mb:.2f} s  ({mb / a.steps * 1000:.1f} ms/step)")
    print(f"one of each class, two passes per step:         median {mt:.2f} s  ({mt / a.steps * 1000:.1f} ms/step)")
    print(f"batched / two passes: {mb / mt:.2f}x")
    print(
        f"one of each class, batched, plain fp32:         median {mf:.2f} s  (app's arithmetic / fp32: {mb / mf:.2f}x)"
    )
    print(f"one sample with guidance (Reverse trajectory):  median {mo:.2f} s  ({mo / a.steps * 1000:.1f} ms/step)")
    print(f"target: one of each class in at most 3 s -> {'met' if mb <= 3.0 else 'NOT met'} ({mb:.2f} s)")
    print(
        "runs (s): batched "
        + " ".join(f"{v:.2f}" for v in batched)
        + " | two passes "
        + " ".join(f"{v:.2f}" for v in two)
        + " | fp32 "
        + " ".join(f"{v:.2f}" for v in fp32)
    )


if __name__ == "__main__":
    main()
