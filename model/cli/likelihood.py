"""The command line of :mod:`model.diffusion.likelihood`: ``python -m model.likelihood IMAGE ...`` prints
the per-t table of the bound and, as the last line, ``bits/dim: X.XXX`` (see :func:`main`).

This module imports the math from :mod:`model.diffusion.likelihood`; the library never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from model.diffusion.likelihood import PROPOSALS, codec_bpd, estimate_bpd
from model.diffusion.vlb_terms import default_batch_size, vb_terms


def table_rows(timesteps: Sequence[int], max_rows: int = 24) -> list[int]:
    """Which indices to print for a long run: the first few, then about log-spaced, then the last."""
    ts = sorted(set(int(t) for t in timesteps))
    if len(ts) <= max_rows:
        return ts
    idx = np.unique(np.round(np.geomspace(1, len(ts), max_rows)).astype(int) - 1)
    return [ts[i] for i in idx]


def _parse_timesteps(value: str) -> str | int:
    if value == "all":
        return value
    try:
        n = int(value)
    except ValueError as exc:
        raise ValueError(f"--timesteps must be 'all' or a number of sampled t, got {value!r}") from exc
    if n < 2:
        raise ValueError("--timesteps N needs N >= 2 (the standard error needs two samples)")
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m model.likelihood IMAGE [--model DIR] [--res 64] [--timesteps all|N] [--seed S] [--proposal uniform|importance]``.

    Prints the per-t table and, as the last line, ``bits/dim: X.XXX``.
    """
    import argparse
    import sys

    from tqdm import tqdm

    from model.images.decode import ImageLoadError
    from model.images.tensors import load_image
    from model.nets.checkpoint_io import ModelLoadError
    from model.nets.network import load_model

    p = argparse.ArgumentParser(prog="python -m model.likelihood", description=main.__doc__.splitlines()[0])
    p.add_argument("image", help="a PNG/JPEG/... file")
    p.add_argument("--model", default=None, help="model folder (default: the bundled checkpoints/photo-unet)")
    p.add_argument("--res", type=int, default=64, help="working resolution in px (default 64)")
    p.add_argument("--timesteps", default="all", help="'all' (every one of the T terms) or N sampled t (default all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="timesteps per network call (default: by --res)")
    p.add_argument(
        "--proposal",
        choices=PROPOSALS,
        default="uniform",
        help="how N sampled t are drawn: uniform (default) or importance (p(t) ~ the VLB weight; smaller error)",
    )
    args = p.parse_args(argv)
    try:
        mode = _parse_timesteps(args.timesteps)
        with open(args.image, "rb") as fh:
            x0 = load_image(fh.read(), args.res)
        model = load_model(args.model)
    except (OSError, ValueError, ImageLoadError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sched = model.schedule
    gen = torch.Generator().manual_seed(args.seed)
    batch_size = args.batch_size or default_batch_size(args.res)
    print(
        f"model: {model.source} ({model.num_parameters / 1e6:.2f} M params), schedule {sched.name}, "
        f"variance {sched.variance_type}, T = {sched.T}"
    )
    print(f"image: {args.image} at {args.res} px, 8-bit quantised, {3 * args.res * args.res} dims")
    bar = tqdm(total=1, unit="t", file=sys.stderr, desc="bound terms")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        if mode == "all":
            res = vb_terms(model.eps, sched, x0, None, gen, batch_size, progress=progress)
            total, stderr = res.total_bpd, 0.0
        else:
            est = estimate_bpd(model.eps, sched, x0, mode, gen, batch_size, progress=progress, proposal=args.proposal)
            res, total, stderr = est.terms, est.total_bpd, est.stderr
    except ValueError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    by_t = {int(t): (float(v), float(m)) for t, v, m in zip(res.timesteps, res.terms_bpd, res.eps_mse, strict=True)}
    rows = table_rows(by_t)
    shown = "subsampled, " if len(rows) < len(by_t) else ""
    print(f"per-t terms ({shown}{len(rows)} of {len(by_t)} computed; index 0 = decoder L_0, t >= 1 = KL L_t)")
    print(f"{'t':>5}  {'alpha_bar':>10}  {'bits/dim':>10}  {'eps-MSE':>9}")
    for t in rows:
        v, m = by_t[t]
        print(f"{t:>5}  {float(sched.alpha_bar[t]):>10.3e}  {v:>10.5f}  {m:>9.5f}")
    codec = codec_bpd(x0)
    print(f"decoder L_0: {by_t[0][0]:.4f}   prior L_T: {res.prior_bpd:.2e}")
    if mode == "all":
        print(f"sum of KL terms L_1..L_{{T-1}}: {float(res.terms_bpd.sum()) - by_t[0][0]:.4f}")
    else:
        print(
            f"estimate from {mode} {args.proposal}-sampled t (+ exact L_0): {total:.3f} ± {stderr:.3f} bits/dim "
            "(one standard error; it falls like 1/sqrt(N))"
        )
    print(f"reference: PNG {codec['png']:.3f} bits/dim, JPEG q90 {codec['jpeg']:.3f} bits/dim (lossy)")
    print(f"bits/dim: {total:.3f}")
    return 0
