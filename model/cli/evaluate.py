"""The command line of :mod:`model.evaluation.evaluate`: Evaluate a noise-predictor checkpoint on held-out photos.

python -m model.cli.evaluate --help
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from model.evaluation.evaluate import (
    DEFAULT_TS,
    evaluate,
    format_per_photo,
    format_table,
    load_checkpoint,
    save_grid,
    save_high_t,
)
from model.training.crops import center_square, list_images, load_images


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description="Evaluate a noise predictor against blur and BM3D on held-out photos.")
    ap.add_argument("checkpoint", help="diffusers checkpoint folder (config.json, safetensors, scheduler_config.json)")
    ap.add_argument(
        "--images", type=Path, required=True, help="folder of held-out photos (python -m model.cli.data --eval-out)"
    )
    ap.add_argument("--res", type=int, default=64, help="evaluation resolution (center crop + resize of each photo)")
    ap.add_argument("--ts", default=",".join(map(str, DEFAULT_TS)), help="comma-separated timesteps")
    ap.add_argument("--seeds", type=int, default=4, help="noise draws per photo and t")
    ap.add_argument("--seed", type=int, default=0, help="base seed")
    ap.add_argument("--no-bm3d", action="store_true", help="skip BM3D (slow)")
    ap.add_argument("--save-grid", type=Path, default=None, help="PNG of x̂_0 at each t for one photo")
    ap.add_argument("--grid-image", default=None, help="file name of the photo for --save-grid (default: first)")
    ap.add_argument("--save-t950", type=Path, default=None, help="PNG: each photo clean / x_t / x̂_0 at t=950")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    ts = tuple(int(t) for t in a.ts.split(","))
    if a.save_t950 and 950 not in ts:
        ts = ts + (950,)
    unet, sched = load_checkpoint(a.checkpoint)
    names = [p.name for p in list_images(a.images)]
    x0 = torch.stack([center_square(im, a.res) for im in load_images(a.images)])
    print(
        f"{a.checkpoint}: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M params, "
        f"prediction_type={sched.prediction_type}; {len(names)} photos at {a.res}px x {a.seeds} noise seeds"
    )
    rows, pics = evaluate(unet, sched, x0, ts, a.seeds, a.seed, use_bm3d=not a.no_bm3d)
    print(format_table(rows))
    if not a.no_bm3d:
        print(format_per_photo(rows, names))
    if a.save_grid:
        idx = names.index(a.grid_image) if a.grid_image else 0
        save_grid(a.save_grid, x0, pics, idx)
        print(f"grid of x̂_0 for {names[idx]} -> {a.save_grid}")
    if a.save_t950:
        save_high_t(a.save_t950, x0, pics, 950)
        print(f"x̂_0 at t=950 for every photo -> {a.save_t950}")
    if a.json:
        a.json.write_text(
            json.dumps(
                {"checkpoint": str(a.checkpoint), "images": names, "res": a.res, "seeds": a.seeds, "rows": rows},
                indent=2,
            )
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
