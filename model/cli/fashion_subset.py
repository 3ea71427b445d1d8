"""Build ``assets/fashion-subset.npz``, the Fashion-MNIST subset that "Does it just copy?" runs on.

python -m model.cli.fashion_subset                      # fetch Debian's dataset-fashion-mnist (apt-get download)
python -m model.cli.fashion_subset --from data/fashion  # or use a folder built by model.cli.data --fashion-out

The subset is the first N training and M test images in Fashion-MNIST's own (shuffled) order, stored as uint8
(:mod:`model.evaluation.memorise`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from model.evaluation.memorise import N_TEST, N_TRAIN, SUBSET_FILE, write_subset
from model.training.fashion import build_fashion, is_fashion_folder, load_split


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="source", type=Path, help="a Fashion-MNIST folder (default: fetch it with apt)")
    ap.add_argument("--out", type=Path, default=SUBSET_FILE)
    ap.add_argument("--train", type=int, default=N_TRAIN, help="training images kept")
    ap.add_argument("--test", type=int, default=N_TEST, help="test images kept")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.source
        if folder is None:
            folder = Path(tmp) / "fashion"
            build_fashion(folder, Path(tmp) / "cache")
        if not is_fashion_folder(folder):
            ap.error(f"{folder} holds no Fashion-MNIST IDX files")
        tx, ty = load_split(folder, "train")
        vx, vy = load_split(folder, "test")
        write_subset(tx[: a.train], ty[: a.train], vx[: a.test], vy[: a.test], a.out)
    print(f"wrote {min(a.train, len(tx))} training and {min(a.test, len(vx))} test images to {a.out}")


if __name__ == "__main__":
    raise SystemExit(main())
