"""Training the judge of :mod:`model.evaluation.judge` (command line in :mod:`model.cli.judge`)::

python -m model.cli.judge --data data/fashion --out checkpoints/fashion-judge
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.evaluation.gen_metrics import COPY_QUANTILE, calibrate_copy_threshold
from model.evaluation.judge import ARCH, Judge, JudgeConfig, accuracy, data_fingerprint, save_judge
from model.training.fashion import CLASSES, load_split


def train_judge(
    folder: Path,
    out_dir: Path,
    epochs: int = 4,
    seed: int = 0,
    *,
    batch_size: int = 128,
    lr: float = 2e-3,
    max_steps: int | None = None,
    config: JudgeConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train a :class:`Judge` on ``load_split(folder, "train")`` only and save it to ``out_dir``.

    Adam (``lr``, cosine decay to 0 over the run), batches of ``batch_size`` drawn without replacement
    each epoch, random horizontal flips. Randomness (init, order, flips, dropout) comes from ``seed``
    inside :func:`torch.random.fork_rng`, so the global RNG is untouched. ``max_steps`` cuts the run
    short (tests). Afterwards it measures the test accuracy and calibrates the near-copy threshold
    (:func:`calibrate_copy_threshold`) and writes both into ``judge.json``, which it also returns.
    """
    say = log or (lambda s: None)
    x, y = load_split(folder, "train")
    xt, yt = load_split(folder, "test")
    t_start = _dt.datetime.now(_dt.UTC)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        judge = Judge(config)
        xs, ys = judge.normalise(x), torch.from_numpy(y)  # (N, 1, 28, 28) float32, (N,) int64
        opt = torch.optim.Adam(judge.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        g = torch.Generator().manual_seed(seed)
        judge.train()
        step, running = 0, []
        for epoch in range(epochs):
            perm = torch.randperm(len(xs), generator=g)
            for i in range(0, len(xs), batch_size):
                if step >= total:
                    break
                idx = perm[i : i + batch_size]
                xb, yb = xs[idx], ys[idx]
                flip = torch.rand(len(idx), generator=g) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
                loss = F.cross_entropy(judge(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                running.append(loss.item())
                step += 1
            say(f"epoch {epoch + 1}/{epochs}: {step} steps, mean loss {np.mean(running):.4f}")
            running = []
    judge.eval()
    acc, per_class = accuracy(judge, xt, yt)
    say(f"test accuracy {acc * 100:.2f} % ({len(xt)} test images)")
    half = len(xt) // 2
    threshold = calibrate_copy_threshold(xt[half:], x)
    say(f"near-copy threshold {threshold:.4f} (1st percentile of test[{half}:]'s nearest-train L2 distance)")
    meta = {
        "test_accuracy": acc,
        "test_accuracy_per_class": dict(zip(CLASSES, per_class, strict=True)),
        "epochs": epochs,
        "steps": step,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": "Adam, cosine decay to 0, random horizontal flips",
        "train_images": int(len(x)),
        "test_images": int(len(xt)),
        "date": t_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "near_copy": {
            "threshold": threshold,
            "quantile": COPY_QUANTILE,
            "calibrated_on": f"test[{half}:]",
            "distance": "L2 over the 784 pixels scaled to [0, 1], to the nearest training image",
            "data_fingerprint": data_fingerprint(x, xt),
        },
    }
    save_judge(judge, out_dir, meta)
    return {"arch": ARCH, "config": asdict(judge.config), **meta}
