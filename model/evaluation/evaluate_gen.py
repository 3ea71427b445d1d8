"""Judge a class-conditional Fashion-MNIST generator's samples against real data and four reference rows.

    python -m model.cli.evaluate_gen SAMPLES.npz --data data/fashion --judge checkpoints/fashion-judge [--out DIR]

``SAMPLES.npz`` holds ``images``: uint8 (N, H, W) or (N, H, W, 1) in 0…255 with H = W = 28, or 32 (the
model resolution: the central 28×28 crop is taken, i.e. 2 px off each side, undoing the padding of :func:`model.training.fashion.to_model`
does), and ``labels``: int (N,) in 0…9, the class each image was asked for.

Prints a markdown table (the model row and the four reference rows of :func:`model.evaluation.judge.reference_rows`;
columns: judge agreement %, FID on judge features vs the test split, diversity / real, near-copies %), the
definitions behind each column, and the bar with PASS/FAIL per line:

* judge agreement ≥ 85 %
* FID < ½ × the FID of the "½ real + ½ uniform noise" row
* diversity ≥ 0.7 × real
* near-copies ≤ 5 %

``--out DIR`` also writes ``DIR/eval.json``. Bad input gets one ``error:`` line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.evaluation.judge import (
    REFERENCE_ROWS,
)
from model.training.fashion import CLASSES

BAR_AGREEMENT = 0.85  # judge agreement at least this share
BAR_FID_VS_HALF_NOISE = 0.5  # FID below this fraction of the ½-real/½-noise row's FID
BAR_DIVERSITY = 0.7  # diversity at least this fraction of real's
BAR_NEAR_COPY = 0.05  # near-copy rate at most this share
DEFAULT_PER_CLASS = 50


def load_samples(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) from an npz (see the module docstring).

    Raises ``ValueError`` (or ``OSError`` for an unreadable file) with a sentence saying what to fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist (expected an .npz with 'images' and 'labels')")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, a refused pickle, a truncated file: whatever it is, it is not an npz
        raise ValueError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array, not an .npz with 'images' and 'labels' (use np.savez)")
    with z:
        missing = [k for k in ("images", "labels") if k not in z.files]
        if missing:
            raise ValueError(f"{path} has no {' or '.join(repr(m) for m in missing)} array (it holds {z.files})")
        try:
            images, labels = z["images"], z["labels"]
        except Exception as exc:  # object arrays (pickles) are refused; a damaged member fails to decompress
            raise ValueError(f"{path}: could not read 'images'/'labels' ({type(exc).__name__}: {exc})") from exc
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 in 0..255, got {images.dtype}; scale [-1, 1] images with (x + 1) * 127.5 and round"
        )
    if images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[1] not in (28, 32):
        raise ValueError(
            f"images must be (N, 28, 28) or (N, 32, 32) (optionally with a last axis of 1), got {images.shape}"
        )
    if len(images) < 2:
        raise ValueError(f"need at least 2 images (FID needs a covariance), got {len(images)}")
    if images.shape[1] == 32:
        images = images[:, 2:30, 2:30]  # the central 28×28: the model pads 28 px by 2 on each side
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(images)},), got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise ValueError(f"labels must be in 0..{len(CLASSES) - 1}, got values from {labels.min()} to {labels.max()}")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def default_per_class(labels: np.ndarray) -> tuple[int, str]:
    """Reference images per class: the samples' own count when every class has the same count, else 50."""
    counts = np.bincount(labels, minlength=len(CLASSES))
    present = counts[counts > 0]
    if len(present) == len(CLASSES) and (present == present[0]).all() and present[0] >= 2:
        return int(present[0]), f"{present[0]} per class, as in the samples"
    return DEFAULT_PER_CLASS, (
        f"{DEFAULT_PER_CLASS} per class: the samples are not balanced over the 10 classes "
        f"(counts {counts.tolist()}), so FID rows are not on the same footing"
    )


def bar_checks(model: dict, rows: dict[str, dict]) -> list[dict]:
    """The bar, one dict per line: ``check``, ``value``, ``limit``, ``pass`` (bool) and ``shown`` (the value
    and limit as printed)."""
    half_fid = rows["half_noise"]["fid"] * BAR_FID_VS_HALF_NOISE
    agree, fid_, div, copies = model["agreement"], model["fid"], model["diversity_ratio"], model["near_copy_rate"]
    checks = [
        (
            f"judge agreement >= {BAR_AGREEMENT * 100:g} %",
            agree,
            BAR_AGREEMENT,
            agree >= BAR_AGREEMENT,
            f"{agree * 100:.1f} % (limit {BAR_AGREEMENT * 100:g} %)",
        ),
        (
            f"FID < {BAR_FID_VS_HALF_NOISE:g} x FID of the '{REFERENCE_ROWS['half_noise']}' row",
            fid_,
            half_fid,
            fid_ < half_fid,
            f"{fid_:.2f} (limit {half_fid:.2f})",
        ),
        (
            f"diversity >= {BAR_DIVERSITY:g} x real",
            div,
            BAR_DIVERSITY,
            div >= BAR_DIVERSITY,
            f"{div:.2f} (limit {BAR_DIVERSITY:g})",
        ),
        (
            f"near-copies <= {BAR_NEAR_COPY * 100:g} %",
            copies,
            BAR_NEAR_COPY,
            copies <= BAR_NEAR_COPY,
            f"{copies * 100:.1f} % (limit {BAR_NEAR_COPY * 100:g} %)",
        ),
    ]
    return [{"check": c, "value": v, "limit": lim, "pass": bool(ok), "shown": shown} for c, v, lim, ok, shown in checks]


def format_table(rows: dict[str, dict], labels: dict[str, str]) -> str:
    """Markdown table of evaluate_samples dicts, one row per key of ``rows`` named by ``labels``."""
    head = "| set | n | judge agreement % | FID (judge features, vs test) | diversity / real | near-copies % |"
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    for key, r in rows.items():
        lines.append(
            f"| {labels[key]} | {r['n']} | {r['agreement'] * 100:.1f} | {r['fid']:.2f} | "
            f"{r['diversity_ratio']:.2f} | {r['near_copy_rate'] * 100:.1f} |"
        )
    return "\n".join(lines)
