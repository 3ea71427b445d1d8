"""The command line of :mod:`model.images.figure` (teachers making slides)::

    python -m model.figure IMAGE --t-start 999 --steps 50 --sampler ddim [--eta 0] [--rows 10]
        [--res 64] [--seed 0] [--model DIR_OR_HUB_ID] --out figure.png [--gif anim.gif]
        [--slide slide.png [--transpose] [--title "..."]]
    python -m model.figure noise --model fashion --label sneaker [--guidance 2] --out sneaker.png

Writes the same grid as the app (rows are steps, columns x_t | eps_hat | x0_hat) from the
same trajectory generator, and prints one line per output file. Exit code 2 and one
``error:`` line on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from model.cli.common import add_precision_option, apply_policy, fail, load, read_picture_file
from model.images.figure import Run, gif_bytes, grid_image, pick_rows, record_run, start_sample
from model.images.slide import slide_image


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m model.figure",
        description="Run the reverse process on a photo and write the blog figure: rows are steps, "
        "columns x_t | eps_hat | x0_hat.",
    )
    ap.add_argument("image", help="a photo (PNG, JPEG, ...), or the word 'noise' to start from pure noise")
    ap.add_argument("--t-start", type=int, default=None, help="noise the photo to this timestep index (default T-1)")
    ap.add_argument("--steps", type=int, default=50, help="number of reverse steps (1..T)")
    ap.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim")
    ap.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 = deterministic, 1 = DDPM-like")
    ap.add_argument("--rows", type=int, default=10, help="rows in the grid (evenly spaced steps)")
    ap.add_argument(
        "--res",
        type=int,
        default=None,
        help="working resolution in px (multiple of 16, 32..256); default 64, or the model's own size for 'noise'",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--model", default=None, help="bundled | fashion | a model folder | a Hub id (default: the bundled photo model)"
    )
    ap.add_argument("--label", default=None, help="class-conditional models: the class (name or index)")
    ap.add_argument(
        "--guidance", type=float, default=None, help="classifier-free guidance scale w (default: the app's, or 0)"
    )
    ap.add_argument("--out", required=True, help="grid PNG to write")
    ap.add_argument("--gif", default=None, help="also write an animated GIF of the three panels")
    ap.add_argument("--slide", default=None, help="also write a 16:9 slide (1920x1080 PNG) with a title line")
    ap.add_argument(
        "--transpose", action="store_true", help="the slide shows steps as columns (x_t, eps_hat, x0_hat as rows)"
    )
    ap.add_argument("--title", default=None, help="the slide's title line (default: the settings)")
    add_precision_option(ap)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    from model.diffusion.guidance import guided_eps_model
    from model.diffusion.trajectory import make_timesteps, sample_trajectory
    from model.images.decode import ImageLoadError
    from model.images.generate import default_guidance, resolve_label
    from model.images.tensors import check_resolution, load_image, to_channels
    from model.nets.checkpoint_io import ModelLoadError

    a = _parser().parse_args(argv)

    serving = apply_policy(a)
    if a.steps < 1 or a.rows < 1:
        return fail("--steps and --rows must be at least 1.")
    if a.eta < 0:
        return fail("--eta must be >= 0.")
    try:
        model = load(serving, a.model)
    except ModelLoadError as exc:
        return fail(str(exc))
    try:
        label = None if a.label is None else resolve_label(model.classes, a.label)
        guidance = default_guidance(model) if a.guidance is None else a.guidance
        if label is None and model.conditional:
            guidance = 0.0 if a.guidance is None else guidance  # no class: the unconditional prediction
        eps_model = guided_eps_model(model, label, guidance)
    except ValueError as exc:
        return fail(f"{exc}.")
    try:
        res = check_resolution(a.res or (max(32, model.resolution) if a.image == "noise" else 64))
        x0 = None
        if a.image != "noise":
            x0 = to_channels(load_image(read_picture_file(a.image), res), model.channels)
    except ImageLoadError as exc:
        return fail(f"{a.image}: {exc}")
    schedule = model.schedule
    t_start = schedule.T - 1 if a.t_start is None or x0 is None else a.t_start
    if not 0 <= t_start < schedule.T:
        return fail(f"--t-start must lie in 0..{schedule.T - 1} for this model.")
    with torch.inference_mode():
        x_start, g = start_sample(schedule, x0, t_start, a.seed, (1, model.channels, res, res))
        ts = make_timesteps(t_start, a.steps)
        records = sample_trajectory(eps_model, schedule, x_start, ts, a.sampler, a.eta, g)
        bar = tqdm(total=len(ts), desc=f"{a.sampler} {len(ts)} steps", unit="step", file=sys.stderr)
        run = record_run(records, x0, on_step=lambda done, total: bar.update(1))
        bar.close()
    out = Path(a.out)
    grid = grid_image(run.frames, indices=_grid_rows(run, a.rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    print(f"{out}  {grid.width}x{grid.height} px  ({len(_grid_rows(run, a.rows))} rows x 3 panels)")
    if a.slide:
        title = a.title or (
            f"{a.sampler.upper()}{f' η = {a.eta:g}' if a.sampler == 'ddim' else ''}, {len(ts)} steps from "
            f"t = {t_start}, seed {a.seed} · {'from ' + Path(a.image).name if x0 is not None else 'from pure noise'}, "
            f"{a.model or 'bundled'} model, {res} px"
        )
        spath = Path(a.slide)
        spath.parent.mkdir(parents=True, exist_ok=True)
        slide_rows = min(a.rows, 8 if a.transpose else 5, len(run.frames))
        slide = slide_image(run.frames, title, indices=_grid_rows(run, slide_rows), transposed=a.transpose)
        slide.save(spath)
        layout = f"{slide_rows} steps as columns" if a.transpose else f"{slide_rows} rows x 3 panels"
        print(f"{spath}  {slide.width}x{slide.height} px  (slide, {layout})")
    if a.gif:
        gpath = Path(a.gif)
        gpath.parent.mkdir(parents=True, exist_ok=True)
        gpath.write_bytes(gif_bytes(run.frames))
        with Image.open(gpath) as im:
            print(f"{gpath}  {im.width}x{im.height} px  ({getattr(im, 'n_frames', 1)} frames)")
    return 0


def _grid_rows(run: Run, rows: int) -> list[int]:
    """Positions in ``run.frames`` for ``rows`` evenly spaced steps (first and last included)."""
    return pick_rows(len(run.frames), rows)
