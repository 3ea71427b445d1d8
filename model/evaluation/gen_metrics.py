"""The four numbers of a set of generated images, on the judge's predictions and features or on pixels.

Pure functions of arrays, no network: :mod:`model.evaluation.judge` computes predictions and features with its CNN and
calls these (:func:`model.evaluation.judge.evaluate_samples`). Images are grey uint8 (N, 28, 28) in 0…255; labels
int (N,); features float (N, D).

* :func:`agreement`: share of predictions equal to the class asked for.
* :func:`fid` / :func:`fid_from_stats`: Fréchet distance of Gaussians fitted to two feature sets.
* :func:`diversity` / :func:`diversity_per_class`: mean pairwise feature distance within a class.
* :func:`near_copy_rate`: share of images closer to their nearest training image than a threshold
  calibrated on unseen real images (:func:`calibrate_copy_threshold`).
"""

from __future__ import annotations

import numpy as np
import torch

COPY_QUANTILE = 0.01  # near-copy threshold: this quantile of real test images' nearest-train distances


def agreement(pred, asked) -> float:
    """Share in [0, 1] of ``pred == asked``; both int (N,). An empty set gives nan."""
    pred, asked = np.asarray(pred), np.asarray(asked)
    if pred.shape != asked.shape or pred.ndim != 1:
        raise ValueError(f"predictions {pred.shape} and asked labels {asked.shape} must both be (N,)")
    return float((pred == asked).mean()) if len(pred) else float("nan")


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) in float64 of features (N, D), N ≥ 2 (unbiased covariance)."""
    f = np.asarray(feats, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features (N >= 2, D), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via eigh (negative round-off clipped to 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def fid_from_stats(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """Fréchet distance of N(mu_a, sigma_a) and N(mu_b, sigma_b) (Heusel et al. 2017, eq. 6):

        ||mu_a - mu_b||² + Tr(sigma_a + sigma_b - 2 (sigma_a sigma_b)^½)

    in float64. Tr((sigma_a sigma_b)^½) is computed as Tr((S sigma_b S)^½) with S = sigma_a^½ (same
    eigenvalues, but symmetric, so eigh applies and nothing turns complex).
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    s = _psd_sqrt(sigma_a)
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh(s @ sigma_b @ s), 0, None)).sum())
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * tr_sqrt)


def fid(feat_a, feat_b) -> float:
    """FID between two feature sets (N_a, D) and (N_b, D): :func:`fid_from_stats` of their fitted Gaussians."""
    return fid_from_stats(*feature_stats(feat_a), *feature_stats(feat_b))


def diversity_per_class(feats, labels) -> dict[int, float]:
    """{class: mean Euclidean distance over all pairs i < j of features (N, D) with that label}; classes
    with fewer than 2 images are left out."""
    f, y = torch.as_tensor(np.asarray(feats, np.float64)), np.asarray(labels)
    out = {}
    for k in np.unique(y):
        fk = f[torch.from_numpy(y == k)]
        n = len(fk)
        if n >= 2:
            d = torch.cdist(fk, fk)  # (n, n), zero diagonal
            out[int(k)] = float(d.sum() / (n * (n - 1)))
    return out


def diversity(feats, labels) -> float:
    """Mean over classes of :func:`diversity_per_class` (feature-space units; compare as a ratio to real)."""
    per = diversity_per_class(feats, labels)
    return float(np.mean(list(per.values()))) if per else float("nan")


def _flat01(images_uint8) -> torch.Tensor:
    a = np.asarray(images_uint8)
    if a.dtype != np.uint8 or a.ndim != 3:
        raise ValueError(f"need uint8 images (N, H, W), got {a.dtype} {a.shape}")
    return torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)


def nearest_train_distance(samples_uint8, train_uint8, chunk: int = 8192) -> np.ndarray:
    """float64 (N,): L2 distance (pixels scaled to [0, 1], so at most 28 for 28×28) from each sample to
    its nearest training image.

    ``||a - b||² = ||a||² + ||b||² - 2 a·b`` with the training set in chunks of ``chunk`` rows, so memory
    stays at N × chunk floats; the winner's distance is then recomputed exactly in float64 (the float32
    expansion loses about 1e-2 near 0, which would blur the line between a copy and a near copy).
    """
    a, b = _flat01(samples_uint8), _flat01(train_uint8)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples have {a.shape[1]} pixels, training images {b.shape[1]}")
    if len(a) == 0:
        return np.zeros(0)
    a2 = (a * a).sum(1, keepdim=True)  # (N, 1)
    best = torch.full((len(a),), float("inf"))
    arg = torch.zeros(len(a), dtype=torch.long)
    for i in range(0, len(b), chunk):
        bc = b[i : i + chunk]
        d2 = a2 + (bc * bc).sum(1)[None] - 2 * a @ bc.T  # (N, chunk)
        m, j = d2.min(1)
        better = m < best
        best, arg = torch.where(better, m, best), torch.where(better, j + i, arg)
    ra = np.asarray(samples_uint8).reshape(len(a), -1).astype(np.float64)
    rb = np.asarray(train_uint8).reshape(len(b), -1)[arg.numpy()].astype(np.float64)
    return np.sqrt((((ra - rb) / 255.0) ** 2).sum(1))  # float64 from the uint8 pixels


def calibrate_copy_threshold(real_uint8, train_uint8, quantile: float = COPY_QUANTILE) -> float:
    """The near-copy threshold: the ``quantile`` (default 1st percentile) of the nearest-training-image
    distances of real images NOT in the training set (test images). Under that definition a set of
    unseen real images has a near-copy rate of about ``quantile``."""
    return float(np.quantile(nearest_train_distance(real_uint8, train_uint8), quantile))


def near_copy_rate(samples_uint8, train_uint8, threshold: float) -> float:
    """Share in [0, 1] of samples (N, 28, 28) uint8 whose nearest training image (L2 on [0, 1] pixels,
    :func:`nearest_train_distance`) is closer than ``threshold`` (strictly)."""
    d = nearest_train_distance(samples_uint8, train_uint8)
    return float((d < threshold).mean()) if len(d) else float("nan")
