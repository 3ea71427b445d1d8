"""Benchmark (issue 20): the fidelity guard's measurements, and the evaluation table in fp32 and on the fast path.

    .venv/bin/python bench/precision.py [--threads 2] [--seeds 4] [--res 64]

For the bundled photo model and the Fashion generator it runs :func:`model.serving.precision.choose`
afresh (nothing remembered) and prints, per candidate arithmetic, the x0_hat PSNR against fp32
at each of the guard's timesteps, the timesteps it passed, the timing at 128 px and the choice,
with the time the check took.

Then the evaluation table's model column (``python -m model.cli.evaluate``: PSNR of x0_hat against
the clean photo at t = 25 ... 950, the same noisy inputs) for the bundled photos in ``assets/``
(centre-cropped to ``--res``), once in fp32 and once on the chosen path. The issue's rule: every
PSNR unchanged within 0.05 dB.

Run it on a quiet machine: the timings (not the PSNRs) depend on what else runs.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from model.evaluation.evaluate import DEFAULT_TS, evaluate
from model.nets.hub import BUNDLED_MODEL, FASHION_MODEL
from model.nets.network import load_local, precision_label
from model.serving import precision
from model.serving.service import Serving
from model.serving.settings import ServingSettings
from model.training.crops import center_square, load_images

ROOT = Path(__file__).resolve().parent.parent
MAX_DB_CHANGE = 0.05


class OnPath:
    """What model.evaluation.evaluate needs of a UNet (``eval()``, ``parameters()``, ``(x, t) -> .sample``), run on ``model``'s path."""

    def __init__(self, model) -> None:
        self.model = model

    def eval(self):
        return self

    def parameters(self):
        return self.model.unet.parameters()

    def __call__(self, x: torch.Tensor, t: torch.Tensor):
        return SimpleNamespace(sample=self.model._network(x, t, None).float())


def guard_report(folder: Path) -> None:
    model = load_local(folder)
    start = time.perf_counter()
    choice = precision.choose(model)
    took = time.perf_counter() - start
    print(f"\n{folder.name}: {model.schedule.prediction_type}, native {model.resolution} px; check took {took:.2f} s")
    print(f"  chosen: {choice.label}  ({choice.reason})")
    for name, trial in choice.trials.items():
        line = f"  {name:5s}"
        if "ms" in trial:
            line += f" {trial['ms']:7.1f} ms at {precision.TIMING_SIZE} px"
        if "psnr_db" in trial:
            line += f"; passed up to t = {trial['passed_to']}; min PSNR {trial['min_psnr_db']:.1f} dB"
            print(line)
            cells = "  ".join(f"{t}:{v:.1f}" for t, v in trial["psnr_db"].items())
            print(f"        x0_hat PSNR vs fp32 by t (dB): {cells}")
        else:
            print(line)


def eval_table(res: int, seeds: int) -> None:
    photos = Path(os.environ.get("TMPDIR", "/tmp")) / "diffusion-lens-bench-photos"
    photos.mkdir(exist_ok=True)
    for p in sorted(ROOT.glob("assets/*.jpg")):
        (photos / p.name).write_bytes(p.read_bytes())
    x0 = torch.stack([center_square(im, res) for im in load_images(photos)])
    fp32 = load_local(BUNDLED_MODEL)
    fast = Serving(ServingSettings(precision_cache=None), policy="auto").prepare(load_local(BUNDLED_MODEL))
    print(f"\nevaluation table, model column: {len(x0)} photos at {res} px x {seeds} noise seeds, bundled model")
    print(f"  fast path: {precision_label(fast)}")
    rows = {}
    for name, m in (("fp32", fp32), ("fast", fast)):
        with torch.inference_mode():
            rows[name], _ = evaluate(OnPath(m), m.schedule, x0, DEFAULT_TS, seeds, use_bm3d=False, progress=False)
    print(f"  {'t':>4} {'fp32 dB':>9} {'fast dB':>9} {'change':>8}")
    worst = 0.0
    for a, b in zip(rows["fp32"], rows["fast"], strict=True):
        change = b["model"] - a["model"]
        worst = max(worst, abs(change))
        print(f"  {a['t']:>4} {a['model']:9.3f} {b['model']:9.3f} {change:+8.4f}")
    verdict = "met" if worst <= MAX_DB_CHANGE else "NOT met"
    print(f"  largest change {worst:.4f} dB (rule: within {MAX_DB_CHANGE} dB: {verdict})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--res", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads, load average {os.getloadavg()[0]:.2f}")
    for folder in (BUNDLED_MODEL, FASHION_MODEL):
        guard_report(Path(folder))
    eval_table(a.res, a.seeds)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
