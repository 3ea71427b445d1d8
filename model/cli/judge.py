"""The command line of :mod:`model.evaluation.judge`: ``python -m model.cli.judge --data data/fashion --out DIR`` trains
the Fashion-MNIST judge on the train split and writes ``DIR/judge.safetensors`` + ``DIR/judge.json``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Train the judge (a small CNN classifier) on the Fashion-MNIST train split; print its test accuracy."""
    import torch

    from model.evaluation.judge_train import train_judge
    from model.training.fashion import is_fashion_folder

    p = argparse.ArgumentParser(prog="python -m model.cli.judge", description=main.__doc__)
    p.add_argument("--data", default="data/fashion", help="Fashion-MNIST folder (default data/fashion)")
    p.add_argument(
        "--out", default="checkpoints/fashion-judge", help="output folder (default checkpoints/fashion-judge)"
    )
    p.add_argument("--epochs", type=int, default=4, help="passes over the 60,000 training images (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, order, flips and dropout (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = p.parse_args(argv)
    if not is_fashion_folder(Path(args.data)):
        print(
            f"error: {args.data} holds no Fashion-MNIST IDX files; build it with python -m model.cli.data "
            f"--fashion-out {args.data}",
            file=sys.stderr,
        )
        return 2
    if args.epochs < 1:
        print(f"error: --epochs must be at least 1, got {args.epochs}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        meta = train_judge(Path(args.data), Path(args.out), args.epochs, args.seed, log=print)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"saved {args.out}: test accuracy {meta['test_accuracy'] * 100:.2f} %, "
        f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
