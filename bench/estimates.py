"""Benchmark: every time estimate the app shows, beside the measured time of the same work.

    PYTHONPATH=. .venv/bin/python bench/estimates.py [--quick] [--threads N] [--repeats 1] [--standin-steps 5]
        [--standin-terms 6] [--cpu-clock]

Issue 20's bar: every estimate lands within ±30 % of the measured time, for

* **bundled**: the bundled photo model (checkpoints/photo-unet) at its 64 px;
* **local copy**: the same folder copied to a temporary directory and loaded by its path
  (what "Local folder" in the picker does);
* **256-px stand-in**: a Hub-sized UNet2DModel at 256 px with random weights, the architecture of
  google/ddpm-ema-church-256 (113.7M parameters; speed does not depend on the weights).
  ``--quick`` makes it a quarter as wide (a smoke run, not the bar).

Per model, the work the app quotes before running it (estimates from :mod:`app.compute.estimates`, the
same functions the pages call; each measurement they need is made first, as on a server):

* **one step**: a one-step run with the record the Reverse trajectory keeps (the sidebar's s per step);
* **DDIM 50** from pure noise, every step recorded (the Reverse trajectory's run);
* **DDPM 1000** (``--quick``: 100);
  the stand-in runs ``--standin-steps`` DDIM and DDPM steps: at full width one pass takes seconds on a CPU;
* **all terms**: the Training objective's "Compute all T terms" (:func:`model.diffusion.likelihood.vb_terms`
  with the app's batch size); ``--standin-terms`` terms for the stand-in, a full run there takes hours.

The measured runs go through the same code as the pages (``model.images.figure.start_sample``,
``model.diffusion.trajectory.sample_trajectory``, ``model.images.figure.record_run``; ``vb_terms`` with ``model.eps``),
without Streamlit. Prints estimate, measured and their ratio; the load average is printed beside
them, since both depend on what else runs on the machine. With ``--repeats`` above 1 a row also
shows the fastest and slowest of its measured runs.

On a machine shared with other jobs, wall-clock ratios mostly show how the load changed between
the measuring and the run. ``--cpu-clock`` makes every clock in the process (the estimates'
measurements and the measured runs) read the main thread's CPU time instead, which leaves out the
time other processes take the core (not their share of caches and memory bandwidth): a check for
errors in the estimates themselves, not the figures a user sees. It needs one torch thread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from app.compute import estimates, objective, reverse
from model.diffusion import likelihood as lk
from model.diffusion import vlb_terms
from model.diffusion.trajectory import make_timesteps
from model.images.tensors import load_image
from model.nets.hub import BUNDLED_MODEL
from model.nets.network import LoadedModel, load_local, load_model
from model.serving import process

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "assets" / "astronaut.jpg"
BAND = 0.30  # issue 20: within ±30 %


def standin_256(width: int = 128) -> LoadedModel:
    """google/ddpm-ema-church-256's UNet2DModel (``width`` 128) with random weights, at 256 px, on the CPU."""
    from diffusers import UNet2DModel

    from model.diffusion.schedule import make_schedule

    w = width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DModel(
            sample_size=256,
            in_channels=3,
            out_channels=3,
            block_out_channels=(w, w, 2 * w, 2 * w, 4 * w, 4 * w),
            layers_per_block=2,
            down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
        ).eval()
    unet = unet.requires_grad_(False).to(memory_format=torch.channels_last)
    return LoadedModel(unet=unet, schedule=make_schedule("linear"), resolution=256, source=f"stand-in-256-w{w}")


def timed(call, repeats: int = 1, min_total_s: float = 1.0) -> list[float]:
    """Wall seconds of ``call()`` over ``repeats`` runs, and more while they add up to under
    ``min_total_s`` (a one-step run takes milliseconds: one hiccup should not decide its row)."""
    out = []
    while len(out) < repeats or (sum(out) < min_total_s and len(out) < 200):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def run_trajectory(model: LoadedModel, res: int, ts: list[int], sampler: str) -> None:
    """The Reverse trajectory's Run itself: app.compute.reverse.trajectory from pure noise (its cache cleared first,
    so every call computes), with ``len(ts)`` steps from ``ts[0]``."""
    reverse.trajectory.clear()
    reverse.trajectory(None, res, "bench", ts[0], sampler, 0.0, len(ts), 0, None, model)
    assert make_timesteps(ts[0], len(ts)) == list(ts), "the run's timesteps are the estimate's"


def run_terms(model: LoadedModel, res: int, x0: torch.Tensor, ts: list[int] | None) -> None:
    """ "Compute all T terms" itself (app.compute.objective.bound_all, its cache cleared first); for a subset of the
    terms (a quick run), the same vb_terms call on those t."""
    if ts is None:
        objective.bound_all.clear()
        objective.bound_all("bench", res, "bench", 0, x0, model)
        return
    batch = vlb_terms.default_batch_size(res)
    lk.vb_terms(model.eps, model.schedule, x0, ts, generator=torch.Generator().manual_seed(0), batch_size=batch)


def bench_model(
    name: str, model: LoadedModel, res: int, ddim_steps: int, ddpm_steps: int, terms: int | None, repeats: int
) -> list:
    T = model.schedule.T
    x0 = load_image(PHOTO.read_bytes(), res)
    if model.channels == 1:
        x0 = x0.mean(1, keepdim=True)
    term_ts = None if terms is None else list(range(T - 1, -1, -1))[:terms]
    work = [
        ("one step (t = T-1)", lambda: estimates.trajectory(model, res, [T - 1]), lambda: run_trajectory(model, res, [T - 1], "ddim")),
        (f"DDIM {ddim_steps} steps", lambda: estimates.trajectory(model, res, make_timesteps(T - 1, ddim_steps)), lambda: run_trajectory(model, res, make_timesteps(T - 1, ddim_steps), "ddim")),
        (f"DDPM {ddpm_steps} steps", lambda: estimates.trajectory(model, res, make_timesteps(T - 1, ddpm_steps), "ddpm"), lambda: run_trajectory(model, res, make_timesteps(T - 1, ddpm_steps), "ddpm")),
        (f"{'all ' + str(T) if terms is None else str(terms)} terms of the bound", lambda: estimates.all_terms(model, res, term_ts), lambda: run_terms(model, res, x0, term_ts)),
    ]  # fmt: skip
    rows = []
    for label, est_fn, run_fn in work:
        start = time.perf_counter()
        est = est_fn()  # measures what it needs first, as the first visitor of a page would
        calib = time.perf_counter() - start
        runs = timed(run_fn, repeats)
        measured = statistics.median(runs)
        rows.append((name, label, est.seconds, measured, calib))
        ratio = est.seconds / measured
        flag = "" if abs(ratio - 1) <= BAND else "  <-- outside ±30 %"
        spread = f"  runs {min(runs):.2f}-{max(runs):.2f} s" if repeats > 1 else ""
        print(
            f"{name:<16} {label:<26} estimate {est.seconds:9.2f} s  measured {measured:9.2f} s  "
            f"ratio {ratio:5.2f}  (measuring took {calib:.2f} s){spread}{flag}",
            flush=True,
        )
    return rows


def speed_work(a, bundled: LoadedModel) -> list:
    """The speed rows: DDIM 50 and 100 terms of the bound with the photo model, the Fashion generator's guided
    DDIM 50 (two passes per step), each idle, beside ``a.students`` students, and across the change."""
    from harness import busy

    fashion = bundled.serving.prepare(load_model("fashion")) if bundled.serving else load_model("fashion")
    res, T = bundled.resolution, bundled.schedule.T
    x0 = load_image(PHOTO.read_bytes(), res)
    ts, terms = make_timesteps(T - 1, 50), list(range(T - 1, -1, -1))[:100]
    fts = make_timesteps(fashion.schedule.T - 1, 50)
    photo = [
        ("DDIM 50 steps", lambda: estimates.trajectory(bundled, res, ts), lambda: run_trajectory(bundled, res, ts, "ddim")),
        ("100 terms of the bound", lambda: estimates.all_terms(bundled, res, terms), lambda: run_terms(bundled, res, x0, terms)),
    ]  # fmt: skip
    rows = busy.speed_rows("photo", bundled, res, photo, a.students, a.think, a.repeats)
    guided = [
        ("guided DDIM 50 steps", lambda: estimates.trajectory(fashion, fashion.resolution, fts, "ddim", True),
         lambda: busy.run_guided(fashion, fts)),
    ]  # fmt: skip
    return rows + busy.speed_rows("fashion", fashion, fashion.resolution, guided, a.students, a.think, a.repeats)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: a narrow stand-in, DDPM 100 at 64 px")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the app's choice)")
    ap.add_argument("--repeats", type=int, default=1, help="measured runs per row (median; short ones: 1 s of runs)")
    ap.add_argument("--standin-steps", type=int, default=5, help="DDIM and DDPM steps for the 256-px stand-in")
    ap.add_argument("--standin-terms", type=int, default=6, help="bound terms for the 256-px stand-in")
    ap.add_argument("--cpu-clock", action="store_true", help="time in the main thread's CPU seconds (a busy machine)")
    ap.add_argument("--students", type=int, default=10, help="speed rows: other sessions' passes beside the runs")
    ap.add_argument("--think", type=float, default=0.2, help="speed rows: a student's pause between passes (s)")
    ap.add_argument("--speed-only", action="store_true", help="only the speed rows (idle, busy, and across)")
    a = ap.parse_args(argv)

    process.configure_allocator()  # the app's allocator setting and thread count
    threads = process.configure_threads(a.threads)
    if a.cpu_clock:
        if threads != 1:
            ap.error("--cpu-clock needs one torch thread (--threads 1): other threads' CPU time would be missed")
        time.perf_counter = time.thread_time  # every clock in this process, model.serving.cost's included
    apply = None
    try:
        from model.serving.service import Serving  # the app picks its arithmetic at load (issue 20, item 1)

        apply = Serving(policy="auto").prepare  # every model gets the app's arithmetic (its Serving object)
    except ImportError:
        pass
    clock = "main thread's CPU time" if a.cpu_clock else "wall clock"
    print(f"threads {threads}, {clock}, load average {os.getloadavg()[0]:.2f}, torch {torch.__version__}", flush=True)
    ddpm = 100 if a.quick else 1000
    rows = []
    bundled = apply(load_model(None)) if apply is not None else load_model(None)
    if a.students:  # issue 36: estimates follow the server's speed, idle and beside other students (bench/busy.py)
        rows += speed_work(a, bundled)
        if a.speed_only:
            return 0
    rows += bench_model("bundled", bundled, bundled.resolution, 50, ddpm, None, a.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "photo-unet-copy"
        shutil.copytree(BUNDLED_MODEL, copy)
        local = apply(load_local(copy)) if apply is not None else load_local(copy)
        rows += bench_model("local copy", local, local.resolution, 50, ddpm, None, a.repeats)
    standin = standin_256(32 if a.quick else 128)
    standin = apply(standin) if apply is not None else standin
    steps = a.standin_steps
    rows += bench_model("256-px stand-in", standin, 256, steps, steps, a.standin_terms, a.repeats)
    worst = max(rows, key=lambda r: abs(r[2] / r[3] - 1))
    ratio = worst[2] / worst[3]
    print(f"worst: {worst[0]} / {worst[1]}: ratio {ratio:.2f}; load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
