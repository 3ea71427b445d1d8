"""The command line of :mod:`model.images.generate`: Generate new images from pure noise.

python -m model.cli.generate --help
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.cli.common import add_precision_option, apply_policy, fail, load
from model.diffusion.guidance import check_guidance
from model.images.generate import (
    DEFAULT_GUIDANCE,
    DEFAULT_MODEL,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    default_guidance,
    generate,
    grid_png,
    label_list,
    resolve_label,
)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m model.cli.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="bundled | fashion | a folder | a Hub id (default: fashion)")
    ap.add_argument("--label", default="all", help="class name or index, or 'all' (one batch per class)")
    ap.add_argument("--per-class", type=int, default=10, help="samples per class (unconditional: samples in all)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--sampler", choices=("ddim", "ddpm"), default=DEFAULT_SAMPLER)
    ap.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0 = deterministic)")
    ap.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale w (default: the w the model's card recommends, classes.json "
        f"recommended_guidance: 2 for the Fashion generator; {DEFAULT_GUIDANCE:g} for a model without one)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=100, help="samples per forward pass (x2 with guidance)")
    ap.add_argument("--res", type=int, default=None, help="resolution in px (default: the model's own)")
    ap.add_argument("--out", required=True, type=Path, help="output folder for samples.npz and grid.png")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    add_precision_option(ap)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    from model.nets.checkpoint_io import ModelLoadError

    a = _parser().parse_args(argv)

    serving = apply_policy(a)
    if a.steps < 1 or a.batch < 1 or a.per_class < 1:
        return fail("--steps, --batch and --per-class must be at least 1.")
    if a.eta < 0:
        return fail("--eta must be >= 0.")
    try:
        model = load(serving, a.model)
    except ModelLoadError as exc:
        return fail(str(exc))
    guidance = default_guidance(model) if a.guidance is None else a.guidance
    try:
        label = resolve_label(model.classes, a.label)
        labels = label_list(model, label, a.per_class)
        check_guidance(model, label if label is not None else (0 if model.conditional else None), guidance)
    except ValueError as exc:
        return fail(f"{exc}.")
    bar = tqdm(total=-(-len(labels) // a.batch) * a.steps, desc="generating", unit="step", file=sys.stderr)
    images = generate(
        model, labels, guidance, a.steps, a.sampler, a.eta, a.seed, a.batch, a.res, on_step=lambda d, t: bar.update(1)
    )
    bar.close()
    a.out.mkdir(parents=True, exist_ok=True)
    npz = a.out / "samples.npz"
    np.savez_compressed(npz, images=images, labels=np.asarray(labels, dtype=np.int64))
    print(
        f"{npz}  images {images.shape} uint8, labels {len(labels)}  (guidance {guidance:g}, {a.sampler} {a.steps} steps)"
    )
    grid = grid_png(images, labels, model.classes)
    gpath = a.out / "grid.png"
    grid.save(gpath)
    print(f"{gpath}  {grid.width}x{grid.height} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
