"""How close generated particles are to the data: maximum mean discrepancy (Gretton et al. 2012).

MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y), here with the unbiased estimate of the first two terms and a
Gaussian kernel k(x, y) = mean over h of exp(-|x - y|^2 / (2 h^2)) for bandwidths h in :data:`BANDWIDTHS` (from
1/20 to 1/2 of the data's extent of about 2). :func:`mmd` returns that estimate of MMD^2 itself, as papers report it
(it fluctuates around 0 for equal distributions; pure noise against moons gives about 0.1, moons blurred by
N(0, 0.1^2) about 0.003: bench/particles.py prints them).
"""

from __future__ import annotations

import torch

BANDWIDTHS = (0.1, 0.2, 0.5, 1.0)


def _kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d2 = torch.cdist(a.double(), b.double()).pow(2)
    return torch.stack([torch.exp(-d2 / (2 * h * h)) for h in BANDWIDTHS]).mean(0)


def mmd(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased estimate of MMD^2 between samples x (n, d) and y (m, d), n, m >= 2. NaN or infinite samples give ``inf``."""
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        return float("inf")
    n, m = len(x), len(y)
    kxx, kyy, kxy = _kernel(x, x), _kernel(y, y), _kernel(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())
