"""Fashion-MNIST: the labelled data of the bundled class-conditional generator (``checkpoints/fashion-unet``).

Build the data folder (needs ``apt-get`` to reach a Debian mirror; nothing is installed)::

    python -m model.cli.data --fashion-out data/fashion

Source: Debian's ``dataset-fashion-mnist`` package (Zalando Research's Fashion-MNIST, © 2017 Zalando SE,
Expat licence), fetched with ``apt-get download`` and unpacked with ``dpkg -x`` like the photos
(:func:`model.training.data.fetch_debs`). The four IDX files (60,000 training and 10,000 test images, 28×28 grey,
10 classes) are copied as they are, with ``manifest.json`` naming the package, version, licence and the
SHA-256 of each file.

Model convention: one channel, the 28-px image padded with background (−1, black) to 32 px, values in
[−1, 1]; shape (B, 1, 32, 32). Labels are int64 in 0…9; :data:`NULL_LABEL` (10) is "no label", the
index that classifier-free guidance's unconditional prediction ε̂(x_t, ∅) uses.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PACKAGE = "dataset-fashion-mnist"
PKG_DIR = "usr/share/datasets/fashion-mnist"
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NULL_LABEL = len(CLASSES)  # the "no label" index: num_class_embeds = 11
RES = 32  # model resolution: 28 px padded by 2 on each side
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
LICENCE = "Expat (MIT); Fashion-MNIST © 2017 Zalando SE (github.com/zalandoresearch/fashion-mnist)"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or raw) as a uint8 array: (N, H, W) for images, (N,) for labels."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, file holds {data.size} values")
    return data.reshape(dims)


def write_idx(path: Path, a: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (used by tests to make tiny stand-ins)."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    head = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    Path(path).write_bytes(gzip.compress(head + a.tobytes()))


def is_fashion_folder(folder: Path) -> bool:
    return all((Path(folder) / f).exists() for f in FILES["train"])


def load_split(folder: Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of ``split`` ("train" or "test")."""
    imf, lbf = FILES[split]
    x, y = read_idx(Path(folder) / imf), read_idx(Path(folder) / lbf)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not match")
    if y.max(initial=0) >= len(CLASSES):
        raise ValueError(f"{folder}: label {int(y.max())} out of range 0..{len(CLASSES) - 1}")
    return x, y.astype(np.int64)


def to_model(x_uint8, res: int = RES) -> torch.Tensor:
    """uint8 (N, h, w) -> float (N, 1, res, res) in [-1, 1], centred and padded with -1 (black)."""
    x = torch.from_numpy(np.array(x_uint8, dtype=np.uint8)).float().div(127.5).sub(1.0)[:, None]
    ph, pw = res - x.shape[-2], res - x.shape[-1]
    if ph < 0 or pw < 0:
        raise ValueError(f"images of {tuple(x.shape[-2:])} px do not fit in {res} px")
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=-1.0)


class LabelledSampler:
    """Random batches (x0 (n, 1, 32, 32) in [-1, 1], y (n,) int64) from the training split, with random
    horizontal flips (a mirrored garment is still that garment)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, seed: int = 0, flip: bool = True):
        self.x, self.y, self.flip = x, y, flip  # x: (N, 1, 32, 32) float in [-1, 1]
        self.g = torch.Generator().manual_seed(seed)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.x), (n,), generator=self.g)
        x = self.x[idx]
        if self.flip:
            f = torch.rand(n, generator=self.g) < 0.5
            x = torch.where(f[:, None, None, None], x.flip(-1), x)
        return x, self.y[idx]


def build_fashion(out: Path, cache: Path | None = None) -> dict:
    """Fetch ``dataset-fashion-mnist``, copy its four IDX files to ``out`` and write ``manifest.json``."""
    from model.training.data import fetch_debs

    cache = Path(cache or Path("data") / "cache")
    root = fetch_debs(cache, (PACKAGE,))[PACKAGE]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    version = next((p.name.split("_")[1] for p in (cache / "debs").glob(f"{PACKAGE}_*.deb")), "unknown")
    rows = []
    for split, names in FILES.items():
        for name in names:
            src = root / PKG_DIR / name
            shutil.copyfile(src, out / name)
            rows.append(
                {
                    "file": name,
                    "split": split,
                    "package": PACKAGE,
                    "package_version": version,
                    "original_path": f"/{PKG_DIR}/{name}",
                    "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(),
                }
            )
    manifest = {
        "files": rows,
        "licence": LICENCE,
        "classes": list(CLASSES),
        "counts": {s: int(len(load_split(out, s)[1])) for s in FILES},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
