"""Heun in the Sampler race (issue 36, item 2): the race's own loop against diffusers' own sampling loop, on the
particles (the exact denoiser) and on the bundled Fashion generator, with and without the model's clip_sample.

Prints, per scheduler and step count: on particles the MMD² of 300 samples to the moons data, the mean path
straightness and the farthest |x| along the paths; on Fashion (class 7, 4 pictures, seed 0) the RMS distance to
DPM-Solver++ at 100 steps and the largest |pixel|. The "unclipped" rows are the race as it was built before
Heun got the model's clip_sample (what made it look broken); the "diffusers loop" rows are diffusers' own pipeline
loop with the model's scheduler config, for Heun.

    .venv/bin/python bench/race_heun.py            # about a minute on one core
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from model.diffusion.schedule import make_schedule, schedule_from_config
from model.particles import data, metrics, paths, race

ROOT = Path(__file__).resolve().parent.parent
FASHION = ROOT / "checkpoints" / "fashion-unet"
LABEL = 7
NAMES = ("Euler", "Heun", "DPM-Solver++", "FlowMatch Euler", "FlowMatch Heun")
COUNTS = (4, 8, 16)


def particles() -> None:
    sched = make_schedule("linear")
    pts = data.make_dataset("moons", 300, 0)
    model = race.exact_particle_model(sched, pts)
    noise = paths.start_noise(300, 1)
    print("Particles (exact denoiser, 300 moons points, clip_sample off):")
    print(f"  {'scheduler':16} {'steps':>5} {'NFE':>4} {'MMD²':>8} {'straight':>9} {'max|x|':>7}")
    for name in NAMES:
        for n in COUNTS:
            r = race.run_one(name, n, model, sched, noise, clip_sample=False)
            far = float(r.path.abs().max())
            mmd = metrics.mmd(r.final, pts)
            print(f"  {name:16} {n:5d} {r.evaluations:4d} {mmd:8.4f} {r.straightness:9.3f} {far:7.2f}")
    for name in ("Heun", "FlowMatch Heun"):
        gains = ", ".join(f"{n} steps: {race.heun_last_check(name, n, sched)[1]:.0f}" for n in COUNTS)
        print(
            f"  {name}: last corrected step ends at sigma {race.heun_last_check(name, 4, sched)[0]:.3g}; gain {gains}"
        )


def fashion() -> None:
    import diffusers

    unet = diffusers.UNet2DModel.from_pretrained(FASHION).eval()
    config = json.loads((FASHION / "scheduler_config.json").read_text())
    sched = schedule_from_config(config)

    @torch.inference_mode()
    def eps_fn(x, t):
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).round().long().expand(x.shape[0])
        return unet(x, t, class_labels=torch.full((x.shape[0],), LABEL)).sample

    noise = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = race.run_one("DPM-Solver++", 100, race.eps_network_model(sched, eps_fn), sched, noise).final

    def rms(x: torch.Tensor) -> float:
        return float((x - ref).pow(2).mean().sqrt())

    print("Fashion generator (class 7, 4 pictures, seed 0; RMS to DPM-Solver++ at 100 steps; pixels in [-1, 1]):")
    print(f"  {'scheduler':16} {'steps':>5} {'RMS now':>8} {'max|x|':>7} {'unclipped':>10} {'max|x|':>7}")
    for name in NAMES:
        for n in COUNTS:
            now = race.run_one(name, n, race.eps_network_model(sched, eps_fn), sched, noise).final
            off = race.run_one(
                name, n, race.eps_network_model(sched, eps_fn, clip_sample=False), sched, noise, clip_sample=False
            ).final
            print(f"  {name:16} {n:5d} {rms(now):8.3f} {now.abs().max():7.2f} {rms(off):10.3f} {off.abs().max():7.2f}")
    for n in COUNTS:
        s = diffusers.HeunDiscreteScheduler.from_config(config)
        s.set_timesteps(n)
        x = noise * s.init_noise_sigma
        for t in s.timesteps:
            x = s.step(eps_fn(s.scale_model_input(x, t), t), t, x).prev_sample
        print(f"  diffusers loop, Heun {n:2d} steps: RMS {rms(x):.3f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    start = time.perf_counter()
    particles()
    if (FASHION / "diffusion_pytorch_model.safetensors").is_file():
        fashion()
    print(f"({time.perf_counter() - start:.0f} s)")
