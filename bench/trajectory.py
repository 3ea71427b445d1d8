"""Benchmark: our recording trajectory generator against diffusers' DDIMPipeline / DDPMPipeline.

    .venv/bin/python bench/trajectory.py [--model DIR] [--arch photo] [--repeats 3] [--threads 2]

Setups (issue 4): 50 DDIM steps at 64 and 128 px, 1000 DDPM steps at 64 px, on the
bundled model (checkpoints/photo-unet). If that folder has no weights yet, a stand-in
UNet2DModel with random weights is built from its config.json (or from ``--arch``) and
the output says "stand-in": speed does not depend on the weights.

* **ours**: ``model.diffusion.trajectory.sample_trajectory`` with the pipeline scheduler's own
  ``timesteps`` (a fair comparison), every StepRecord kept, i.e. x_t, eps_hat and x0_hat
  recorded at every step (as-is: no copies).
* **theirs**: the pipeline with the same UNet and number of steps, no recording,
  ``output_type="np"`` (which adds a clamp/permute/numpy conversion at the end, well
  under a millisecond at these sizes).

Ours and theirs alternate within each repeat so both see the same machine load; the
table reports medians, each run's minor page faults and the final-image difference (same
seed, same noise draws). Both run in one process, under the allocator settings of
``model.serving.process.configure_allocator`` (``DIFFUSION_LENS_MALLOC=default`` for glibc's own:
then the run that keeps its records page-faults the network's activations in afresh at
every step: 88,945 faults per 50-step run at 128 px against 1, and 1.056x, on 2026-11-28).
A :class:`NetClock` splits each run into the UNet's forward and the loop's own work.
Also: one "live step" at 128 px (q_sample + eps_hat + x0_hat + three panels to PIL, the
Denoise page's work) and the scrub latency (three stored uint8 panels to PIL, and to
PNG as st.image sends them, the Reverse trajectory page's work per slider move).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from model.diffusion.schedule import make_schedule, schedule_from_config
from model.nets.checkpoint_io import ModelLoadError
from model.nets.hub import BUNDLED_MODEL
from model.nets.network import LoadedModel, load_model
from model.serving import process
from model.serving.settings import ServingSettings

ROOT = Path(__file__).resolve().parent.parent

SETUPS = [("ddim", 50, 64), ("ddim", 50, 128), ("ddpm", 1000, 64)]


def get_model(a) -> tuple[LoadedModel, str]:
    """The bundled (or --model) model, else a stand-in with random weights."""
    try:
        m = load_model(a.model)
        weights = sorted(Path(m.source).glob("**/*.safetensors")) if Path(m.source).exists() else []
        when = time.strftime(", saved %Y-%m-%d %H:%M UTC", time.gmtime(weights[0].stat().st_mtime)) if weights else ""
        return m, f"{m.source} (trained weights{when})"
    except ModelLoadError as exc:
        if a.model is not None:
            raise SystemExit(f"error: {exc}") from None
    from diffusers import UNet2DModel

    cfg_file, sched_file = BUNDLED_MODEL / "config.json", BUNDLED_MODEL / "scheduler_config.json"
    if cfg_file.is_file():
        unet = UNet2DModel.from_config(json.loads(cfg_file.read_text()))
        what = f"stand-in: random weights, architecture from {cfg_file.relative_to(ROOT)}"
    else:
        from model.training.train_lib import build_unet

        unet = build_unet(a.arch, 64)
        what = f"stand-in: random weights, model.training.train preset '{a.arch}' (no {cfg_file.relative_to(ROOT)} yet)"
    sched = (
        schedule_from_config(json.loads(sched_file.read_text())) if sched_file.is_file() else make_schedule("linear")
    )
    unet.eval().requires_grad_(False)
    return LoadedModel(unet=unet, schedule=sched, resolution=64, source="stand-in"), what


def run_ours(model: LoadedModel, scheduler, res: int, seed: int = 0):
    """Our generator on the scheduler's timesteps, every record kept; returns (seconds, final x)."""
    from model.diffusion.trajectory import sample_trajectory

    sampler = "ddim" if type(scheduler).__name__.startswith("DDIM") else "ddpm"
    ts = scheduler.timesteps.tolist()
    g = torch.Generator().manual_seed(seed)
    f0, t0, c0 = minor_faults(), time.perf_counter(), time.process_time()
    x = torch.randn((1, 3, res, res), generator=g)
    records = list(sample_trajectory(model.predict, model.schedule, x, ts, sampler, 0.0, g))
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    assert len(records) == len(ts) and records[0].eps_hat is not None
    return dt, dc, records[-1].x_prev, minor_faults() - f0


def run_theirs(pipe, steps: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    kw = {"eta": 0.0} if type(pipe).__name__ == "DDIMPipeline" else {}
    f0, t0, c0 = minor_faults(), time.perf_counter(), time.process_time()
    out = pipe(batch_size=1, generator=g, num_inference_steps=steps, output_type="np", **kw)
    return time.perf_counter() - t0, time.process_time() - c0, out.images[0], minor_faults() - f0


def minor_faults() -> int:
    """Minor page faults of this process so far (fresh memory being mapped in)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def make_pipeline(model: LoadedModel, sampler: str, steps: int):
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler

    cfg = model.schedule.to_scheduler_config()
    if sampler == "ddim":
        pipe = DDIMPipeline(unet=model.unet, scheduler=DDIMScheduler.from_config(cfg))
    else:
        pipe = DDPMPipeline(unet=model.unet, scheduler=DDPMScheduler.from_config(cfg))
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler.set_timesteps(steps)  # the pipeline sets the same ones again when called
    return pipe


class NetClock:
    """Adds up the wall time spent inside the UNet's forward (both loops call the same module), so
    a run's time splits into the network and everything else."""

    def __init__(self, unet):
        self.unet, self.seconds = unet, 0.0

    def __enter__(self):
        forward = type(self.unet).forward

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return forward(self.unet, *a, **k)
            finally:
                self.seconds += time.perf_counter() - t0

        self.unet.forward = timed
        return self

    def __exit__(self, *exc):
        del self.unet.forward  # back to the class's forward

    def lap(self) -> float:
        s, self.seconds = self.seconds, 0.0
        return s


def bench_setup(model, sampler, steps, res, repeats):
    # the pipelines take the image size from the UNet config; it is fully convolutional
    model.unet.register_to_config(sample_size=res)
    pipe = make_pipeline(model, sampler, steps)
    ours, theirs = [], []
    diff = float("nan")
    with NetClock(model.unet) as clock:
        for i in range(repeats):
            if i % 2 == 0:  # alternate who goes first, so a change in machine load hits both
                clock.lap()
                o = (*run_ours(model, pipe.scheduler, res), clock.lap())
                t = (*run_theirs(pipe, steps), clock.lap())
            else:
                clock.lap()
                t = (*run_theirs(pipe, steps), clock.lap())
                o = (*run_ours(model, pipe.scheduler, res), clock.lap())
            # (wall, CPU, page faults, wall outside the network)
            ours.append((o[0], o[1], o[3], o[0] - o[4]))
            theirs.append((t[0], t[1], t[3], t[0] - t[4]))
            ours_np = (o[2][0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()
            diff = float(abs(ours_np - t[2]).max())
    med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
    paired = sorted(o[0] / t[0] for o, t in zip(ours, theirs, strict=True))  # each repeat's own ratio
    faults = (med(ours, 2), med(theirs, 2))
    outside = (med(ours, 3) / steps * 1e6, med(theirs, 3) / steps * 1e6)  # µs per step
    return med(ours, 0), med(theirs, 0), med(ours, 1), med(theirs, 1), diff, paired, faults, outside


def bench_overhead(model, sampler, steps, res, repeats=7):
    """Per-step cost of everything but the network: the UNet's forward is swapped for a no-op
    (returns 0.1 x), in both loops, so only the sampling/recording code and the pipeline's own
    bookkeeping are timed. Returns (ours, theirs) in microseconds per step (median)."""
    from diffusers.models.unets.unet_2d import UNet2DOutput

    unet = model.unet
    unet.forward = lambda sample, timestep, *a, **k: UNet2DOutput(sample=sample * 0.1)
    try:
        unet.register_to_config(sample_size=res)
        pipe = make_pipeline(model, sampler, steps)
        ours, theirs = [], []
        for _ in range(repeats):
            ours.append(run_ours(model, pipe.scheduler, res)[1])
            theirs.append(run_theirs(pipe, steps)[1])
    finally:
        del unet.forward  # back to the class's forward
    per = lambda xs: statistics.median(xs) / steps * 1e6  # noqa: E731
    return per(ours), per(theirs)


def bench_live(model, res=128, repeats=15):
    """One Denoise-page step: q_sample + (eps_hat, x0_hat) from LoadedModel.predict, as the page gets them + three
    panels to PIL."""
    from app.charts.render import noise_picture, picture
    from model.diffusion.forward import q_sample

    x0 = torch.rand((1, 3, res, res), generator=torch.Generator().manual_seed(0)) * 2 - 1
    total, net = [], []
    for i in range(repeats + 1):
        t = 100 + 50 * i
        t0 = time.perf_counter()
        with torch.inference_mode():
            x_t, _ = q_sample(model.schedule, x0, t, generator=torch.Generator().manual_seed(i))
            t1 = time.perf_counter()
            eps_hat, x0_hat = model.predict(x_t, t)
            t2 = time.perf_counter()
        _ = (picture(x_t), noise_picture(eps_hat), picture(x0_hat))
        total.append(time.perf_counter() - t0)
        net.append(t2 - t1)
    return statistics.median(total[1:]), statistics.median(net[1:])


def bench_scrub(model, res=128, steps=50, repeats=30):
    """A slider move on the trajectory page: a stored step's three uint8 panels to PIL, then encoded
    as st.image encodes an RGB picture (JPEG, quality 100)."""
    from app.charts.render import DISPLAY_PX
    from model.diffusion.trajectory import make_timesteps, sample_trajectory
    from model.images import figure
    from model.images.tensors import to_picture

    with torch.inference_mode():
        x, g = figure.start_sample(model.schedule, None, model.schedule.T - 1, 0, (1, 3, res, res))
        run = figure.record_run(
            sample_trajectory(
                model.predict, model.schedule, x, make_timesteps(model.schedule.T - 1, steps), "ddim", 0.0, g
            )
        )
    pil, png = [], []
    for i in range(repeats):
        f = run.frames[i % len(run.frames)]
        t0 = time.perf_counter()
        pics = [to_picture(a, DISPLAY_PX) for a in f.panels()]
        t1 = time.perf_counter()
        for p in pics:
            p.save(io.BytesIO(), format="JPEG", quality=100)
        t2 = time.perf_counter()
        pil.append(t1 - t0)
        png.append(t2 - t0)
    return statistics.median(pil), statistics.median(png), run.nbytes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder or Hub id (default: the bundled model)")
    ap.add_argument(
        "--arch", default="photo", help="model.training.train preset for a stand-in when there is no config"
    )
    ap.add_argument("--repeats", type=int, default=7, help="repeats of the 50-step setups (median reported)")
    ap.add_argument("--repeats-long", type=int, default=2, help="repeats of the 1000-step setup")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (the app's default is 2)")
    ap.add_argument(
        "--only",
        choices=("all", "short", "live"),
        default="all",
        help="skip the 1000-step setup (short) or all trajectories (live)",
    )
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    process.configure_threads(a.threads)
    allocator = (
        "glibc tuned by model.serving.process.configure_allocator (freed memory kept for reuse)"
        if process.configure_allocator(ServingSettings.from_environment().malloc != "default")
        else "as the platform sets it (DIFFUSION_LENS_MALLOC=default, or no glibc)"
    )
    model, what = get_model(a)
    n_params = sum(p.numel() for p in model.unet.parameters()) / 1e6
    print(f"# bench/trajectory.py  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"model: {what}; {n_params:.2f}M parameters; schedule {model.schedule.name}, T = {model.schedule.T}")
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{a.threads} threads, load average {os.getloadavg()[0]:.1f} at start"
    )
    print()
    rows = []
    with torch.inference_mode():
        if a.only != "live":
            for sampler, steps, res in SETUPS:
                if a.only == "short" and steps > 100:
                    continue
                reps = a.repeats if steps <= 100 else a.repeats_long
                # warm-up (allocator, oneDNN kernels) with 2 steps
                bench_setup(model, sampler, 2, res, 1)
                o, t, oc, tc, d, paired, faults, outside = bench_setup(model, sampler, steps, res, reps)
                name = f"{steps} {sampler.upper()} steps, {res} px"
                rows.append((name, reps, o, t, oc, tc, d, paired, faults, outside))
                print(f"  done: {rows[-1][0]}  ours {o:.2f}s  theirs {t:.2f}s", file=sys.stderr, flush=True)
            overhead = [(f"{n} {smp.upper()} steps, {r} px", *bench_overhead(model, smp, n, r)) for smp, n, r in SETUPS]
        live, live_net = bench_live(model)
        pil, enc, nbytes = bench_scrub(model)
    model.unet.register_to_config(sample_size=model.resolution)

    if rows:
        print(
            "| setup | repeats | ours, recording x_t/ε̂/x̂₀ (s) | diffusers pipeline (s) | ours/theirs, wall "
            "| paired ratios, median [min–max] | ours/theirs, CPU time | outside the network, µs/step, ours / theirs "
            "| page faults per run, ours / theirs | max abs diff, final image |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, reps, o, t, oc, tc, d, paired, (fo, ft), (uo, ut) in rows:
            spread = f"{statistics.median(paired):.3f} [{paired[0]:.3f}–{paired[-1]:.3f}]"
            print(
                f"| {name} | {reps} | {o:.3f} | {t:.3f} | {o / t:.3f}× | {spread} | {oc / tc:.3f}× "
                f"| {uo:.0f} / {ut:.0f} | {fo:.0f} / {ft:.0f} | {d:.1e} |"
            )
        print()
        print(
            "Times are medians of wall time; a paired ratio is one repeat's ours/theirs (the two ran back to back, in "
            "alternating order). CPU time (process_time) is less sensitive to other jobs on a shared machine. "
            "'Outside the network' is a run's wall time minus the time inside the UNet's forward (the same module "
            f"for both): the loop's own work, recording included. Allocator: {allocator}."
        )
        print()
        print(
            "| loop cost per step without the network (UNet forward swapped for a no-op) | ours (µs) | pipeline (µs) |"
        )
        print("|---|---|---|")
        for name, o, t in overhead:
            print(f"| {name} | {o:.0f} | {t:.0f} |")
        if "stand-in" in what:
            print("With random weights the deterministic DDIM path is chaotic: float32 (diffusers) vs float64 (ours)")
            print("schedule rounding grows step by step, so DDIM final images can differ; per step the math agrees")
            print("(tests/unit/model/diffusion/test_reverse.py::test_ddim_matches_diffusers).")
        print()
    print("| measurement | median | target |")
    print("|---|---|---|")
    print(f"| live step at 128 px (q_sample + ε̂ + x̂₀ + 3 panels to PIL) | {live * 1000:.0f} ms | ≤ 60 ms |")
    print(f"| … of which the ε̂ forward pass | {live_net * 1000:.0f} ms | |")
    print(f"| scrub: one stored step's 3 panels to PIL (128 px run) | {pil * 1000:.1f} ms | |")
    print(f"| scrub: … plus encoding them as st.image does (JPEG q100) | {enc * 1000:.1f} ms | |")
    print(f"| stored run, 50 steps at 128 px (uint8 panels) | {nbytes / 2**20:.1f} MiB | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
