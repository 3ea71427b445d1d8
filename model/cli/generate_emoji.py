"""Words to pictures on the command line: samples and the step figure of the emoji model (checkpoints/emoji-sd).

    python -m model.cli.generate_emoji --prompt "smiling face" --steps 25 --out out/
    python -m model.cli.generate_emoji --prompt "smiling face" --init-image photo.jpg --strength 0.6 --out out/

writes ``samples.png`` (the finished pictures), ``steps.png`` (one row per step: the latent x_t, the decoded
x0_hat and each word's cross-attention map) and ``tokens.txt`` (how the prompt was read). With ``--init-image`` the
pictures start from the photo noised to strength · (T - 1) instead of from noise (SDEdit: :mod:`model.emoji.sdedit`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from model.cli.common import fail, read_picture_file
from model.emoji.figure import samples_grid, step_figure
from model.emoji.pipeline import DEFAULT_DIR, ModelNotTrained, load_pipeline
from model.emoji.sample import Settings, generate, install_recorders
from model.emoji.sdedit import edit, photo_pixels
from model.images.decode import ImageLoadError
from model.images.tensors import decode_image


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--negative", default="", help="negative prompt (default: the empty prompt)")
    ap.add_argument("--w", type=float, default=Settings.w, help="guidance scale (0 = no guidance)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=8, help="how many pictures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=6, help="rows of the step figure")
    ap.add_argument("--model", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--init-image", type=Path, help="a photo to start from (SDEdit) instead of pure noise")
    ap.add_argument(
        "--strength", type=float, default=0.6, help="with --init-image: how far the photo is noised, in (0, 1]"
    )
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        photo = None if a.init_image is None else photo_pixels(decode_image(read_picture_file(a.init_image)))
    except ImageLoadError as e:
        return fail(f"{a.init_image}: {e}")
    try:
        pipe = load_pipeline(a.model)
        install_recorders(pipe.unet)
        s = Settings(a.prompt, a.negative, a.w, a.steps, a.seed, a.batch)
        t0 = time.perf_counter()
        run = generate(pipe, s) if photo is None else edit(pipe, s, photo, a.strength)
        took = time.perf_counter() - t0
    except (ModelNotTrained, ValueError) as e:
        return fail(str(e))
    a.out.mkdir(parents=True, exist_ok=True)
    samples_grid(run).save(a.out / "samples.png")
    step_figure(run, a.rows).save(a.out / "steps.png")
    (a.out / "tokens.txt").write_text(" ".join(run.tokens) + "\n")
    start = "" if photo is None else f" from {a.init_image.name} at strength {a.strength:g}"
    print(
        f"{a.batch} pictures of {a.prompt!r}{start} in {took:.2f} s ({len(run.timesteps)} steps); "
        f"wrote samples.png, steps.png to {a.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
