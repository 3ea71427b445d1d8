"""The command line of :mod:`model.training.data`: Build the training and evaluation photo folders, and the Fashion-MNIST folder.

python -m model.cli.data --help
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model.training.data import (
    build_eval,
    build_train,
)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "what", nargs="?", choices=["emoji"], help="emoji: the words-to-pictures data (default --out data/emoji)"
    )
    ap.add_argument("--out", type=Path, help="training-set folder to build (e.g. data/train)")
    ap.add_argument("--eval-out", type=Path, help="folder for the held-out evaluation photos (e.g. data/eval)")
    ap.add_argument("--cache", type=Path, default=None, help="where .deb files are downloaded and unpacked")
    ap.add_argument("--max-side", type=int, default=1024, help="downscale training photos to this longest side")
    ap.add_argument(
        "--fashion-out", type=Path, help="folder for Fashion-MNIST (Debian's dataset-fashion-mnist), e.g. data/fashion"
    )
    a = ap.parse_args(argv)
    if a.what == "emoji":
        from model.emoji.data import build_emoji

        m = build_emoji(a.out or Path("data/emoji"), a.cache)
        print(f"wrote {m['counts']['pictures']} emoji pictures ({m['counts']['held_out']} held out) + manifest")
        return
    if not a.out and not a.eval_out and not a.fashion_out:
        ap.error("give --out, --eval-out and/or --fashion-out")
    if a.fashion_out:
        from model.training.fashion import build_fashion

        m = build_fashion(a.fashion_out, a.cache)
        print(
            f"wrote Fashion-MNIST ({m['counts']['train']} train, {m['counts']['test']} test) + manifest to {a.fashion_out}"
        )
    if a.out:
        rows = build_train(a.out, a.cache, a.max_side)
        print(f"wrote {len(rows)} training photos + manifest to {a.out}")
    if a.eval_out:
        rows = build_eval(a.eval_out)
        print(f"wrote {len(rows)} evaluation photos + manifest to {a.eval_out}")


if __name__ == "__main__":
    raise SystemExit(main())
