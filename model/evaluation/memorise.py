"""Does it just copy? The exact denoiser of a finite training set against a trained network, on Fashion-MNIST.

The denoiser that is *optimal* for a training set of N images x^(1..N) (each with probability 1/N) is a
softmax-weighted mean of the training images (Tweedie; the same formula as :mod:`model.particles.exact`, in 1,024
dimensions):

    w_i(x_t) = softmax_i( -|x_t - sqrt(alpha_bar_t) x^(i)|^2 / (2 (1 - alpha_bar_t)) )
    x0_hat   = sum_i w_i(x_t) x^(i)

Run from noise it can only return training images (Kadkhodaie et al. 2024; Kamb & Ganguli 2025). The bundled
Fashion network, trained on all 60,000 images, was never told to copy; :func:`nearest` measures how close each of
its pictures is to a training image, against the typical nearest-neighbour distance of real test images.

How it stays fast on a CPU: a fixed subset of :data:`N_TRAIN` training images and :data:`N_TEST` test images
(the first ones of Fashion-MNIST's own order, which is shuffled), stored as uint8 in ``assets/fashion-subset.npz``
(about 2.7 MB; rebuilt from Debian's ``dataset-fashion-mnist`` by ``python -m model.cli.fashion_subset``); the
squared norms of the training images are computed once; the distances are one matrix product in float64, taken over
the training images in chunks (a running log-sum-exp, so memory stays (B, chunk)). The exact denoiser is exact for
the subset: it copies images of the subset, and a network picture's nearest training image is looked up in the
subset too (its nearest image among all 60,000 may be closer; the bench can pass the full set).

Images: (B, 1, 32, 32) float32 in [-1, 1] (:func:`model.training.fashion.to_model`); distances are Euclidean in
that space (a garment against plain black is about 30).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.diffusion.reverse import predict_eps
from model.diffusion.schedule import Schedule
from model.training.fashion import to_model

SUBSET_FILE = Path(__file__).resolve().parents[2] / "assets" / "fashion-subset.npz"
N_TRAIN = 5000
N_TEST = 1000
CHUNK = 2048  # training images per chunk of the distance product
NEAR_COPY = 1 / 3  # a picture is a near-copy when its nearest training image is closer than this share of the
# median nearest-training-image distance of real test images


@dataclass(frozen=True)
class TrainingSet:
    """Training images ``x`` (N, 1, 32, 32) float32 in [-1, 1] with labels ``y`` (N,), their flat float64 copy and
    squared norms (computed once), and held-out ``test`` images (M, 1, 32, 32) with ``test_y``."""

    x: torch.Tensor
    y: torch.Tensor
    test: torch.Tensor
    test_y: torch.Tensor
    flat: torch.Tensor  # (N, D) float64
    sq: torch.Tensor  # (N,) float64: |x^(i)|^2

    @staticmethod
    def of(x: torch.Tensor, y: torch.Tensor | None = None, test: torch.Tensor | None = None, test_y=None):
        """A training set from images (N, C, H, W) (labels and test images optional)."""
        flat = x.reshape(len(x), -1).to(torch.float64)
        y = torch.zeros(len(x), dtype=torch.long) if y is None else y
        test = x[:0] if test is None else test
        test_y = torch.zeros(len(test), dtype=torch.long) if test_y is None else test_y
        return TrainingSet(x.float(), y, test.float(), test_y, flat, flat.pow(2).sum(1))

    def __len__(self) -> int:
        return len(self.x)


def write_subset(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, out: Path) -> None:
    """Store uint8 images (N, 28, 28) and labels as a compressed ``.npz``."""
    np.savez_compressed(
        out,
        train_x=np.asarray(train_x, dtype=np.uint8),
        train_y=np.asarray(train_y, dtype=np.uint8),
        test_x=np.asarray(test_x, dtype=np.uint8),
        test_y=np.asarray(test_y, dtype=np.uint8),
    )


def load_subset(path: Path = SUBSET_FILE, n_train: int | None = None) -> TrainingSet:
    """The stored Fashion-MNIST subset as a :class:`TrainingSet` (its first ``n_train`` training images if given).

    Raises ``FileNotFoundError`` with a sentence saying how to build it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build it with 'python -m model.cli.fashion_subset' (needs apt-get to reach Debian)."
        )
    with np.load(path) as f:
        tx, ty, vx, vy = f["train_x"], f["train_y"], f["test_x"], f["test_y"]
    if n_train is not None:
        tx, ty = tx[:n_train], ty[:n_train]
    return TrainingSet.of(
        to_model(tx), torch.from_numpy(ty.astype(np.int64)), to_model(vx), torch.from_numpy(vy.astype(np.int64))
    )


def _sq_distances(data: TrainingSet, x: torch.Tensor, scale: float, lo: int, hi: int) -> torch.Tensor:
    """|x - scale x^(i)|^2 for i in lo..hi-1: (B, hi - lo) float64 (one matrix product, precomputed norms)."""
    xf = x.reshape(len(x), -1).to(torch.float64)
    cross = xf @ data.flat[lo:hi].T
    return (xf.pow(2).sum(1, keepdim=True) - 2 * scale * cross + scale**2 * data.sq[lo:hi][None]).clamp(min=0)


def empirical_x0_hat(data: TrainingSet, x_t: torch.Tensor, alpha_bar: float, chunk: int = CHUNK) -> torch.Tensor:
    """The exact denoiser of the training set: x0_hat = sum_i w_i(x_t) x^(i) (module docstring), chunked over the
    training images with a running log-sum-exp. x_t (B, C, H, W) -> (B, C, H, W) float32."""
    scale, var = alpha_bar**0.5, max(1.0 - alpha_bar, 1e-12)
    b = len(x_t)
    run_max = torch.full((b, 1), -torch.inf, dtype=torch.float64)
    run_sum = torch.zeros(b, 1, dtype=torch.float64)
    acc = torch.zeros(b, data.flat.shape[1], dtype=torch.float64)
    for lo in range(0, len(data), chunk):
        hi = min(lo + chunk, len(data))
        logits = -_sq_distances(data, x_t, scale, lo, hi) / (2 * var)  # (B, chunk)
        new_max = torch.maximum(run_max, logits.max(1, keepdim=True).values)
        rescale = torch.exp(run_max - new_max)
        w = torch.exp(logits - new_max)
        run_sum = run_sum * rescale + w.sum(1, keepdim=True)
        acc = acc * rescale + w @ data.flat[lo:hi]
        run_max = new_max
    return (acc / run_sum).reshape(x_t.shape).float()


def empirical_eps_model(schedule: Schedule, data: TrainingSet):
    """An ``eps_model(x_t, t) -> (eps_hat, x0_hat)`` for :func:`model.diffusion.trajectory.sample_trajectory`: the
    exact denoiser's x0_hat and the eps_hat it implies (:func:`model.diffusion.reverse.predict_eps`)."""

    def model(x_t: torch.Tensor, t: torch.Tensor):
        tt = int(torch.as_tensor(t).reshape(-1)[0])
        x0_hat = empirical_x0_hat(data, x_t, schedule.alpha_bar_floats[tt])
        return predict_eps(schedule, x_t, x0_hat, tt), x0_hat

    return model


def nearest(data: TrainingSet, x: torch.Tensor, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Each picture's nearest training image: (index (B,) long, Euclidean distance (B,) float64)."""
    best_d = torch.full((len(x),), torch.inf, dtype=torch.float64)
    best_i = torch.zeros(len(x), dtype=torch.long)
    for lo in range(0, len(data), chunk):
        d, i = _sq_distances(data, x, 1.0, lo, min(lo + chunk, len(data))).min(1)
        better = d < best_d
        best_d, best_i = torch.where(better, d, best_d), torch.where(better, i + lo, best_i)
    # the expansion |x|^2 - 2 x.y + |y|^2 finds the nearest; its distance is then taken directly (the expansion's
    # rounding left ~2e-6 between an image and itself)
    exact = (x.reshape(len(x), -1).to(torch.float64) - data.flat[best_i]).pow(2).sum(1).sqrt()
    return best_i, exact


def test_nn_distances(data: TrainingSet) -> torch.Tensor:
    """How far real images the model never saw lie from their nearest training image: (M,) for the test images."""
    if len(data.test) == 0:
        raise ValueError("this training set has no test images to compare with")
    return nearest(data, data.test)[1]


def near_copy_threshold(data: TrainingSet) -> float:
    """The distance under which a picture counts as a near-copy: :data:`NEAR_COPY` of the test images' median."""
    return float(test_nn_distances(data).median()) * NEAR_COPY


def near_copy_share(data: TrainingSet, pictures: torch.Tensor, threshold: float) -> float:
    """The share of ``pictures`` (B, C, H, W) whose nearest training image is closer than ``threshold``."""
    return float((nearest(data, pictures)[1] < threshold).double().mean())


@dataclass(frozen=True)
class CopyRun:
    """Both denoisers from the same start noise: ``ts`` the steps' t; per denoiser name, ``x0_hat[name]`` one
    (B, 1, 32, 32) tensor per step, ``final[name]`` (B, 1, 32, 32), ``nearest_index`` / ``nearest_distance`` (B,)
    its nearest training image, ``seconds`` the run's wall time."""

    ts: list[int]
    x0_hat: dict[str, list[torch.Tensor]]
    final: dict[str, torch.Tensor]
    nearest_index: dict[str, torch.Tensor]
    nearest_distance: dict[str, torch.Tensor]
    seconds: dict[str, float]


def copy_test(schedule: Schedule, data: TrainingSet, models: dict, x_T: torch.Tensor, steps: int) -> CopyRun:
    """Run every ``models[name]`` (an ``eps_model``, e.g. :func:`empirical_eps_model` and the network's
    ``predict``) with DDIM (eta = 0, deterministic) from the same x_T (B, 1, 32, 32) in ``steps`` steps, through the
    project's one trajectory generator (x0_hat clipped to [-1, 1] as the schedule says: the exact denoiser's is a
    mean of images, inside already); then look up each final picture's nearest training image."""
    import time

    from model.diffusion.trajectory import make_timesteps, sample_trajectory

    ts = make_timesteps(schedule.T - 1, steps)
    x0s, finals, idx, dist, secs = {}, {}, {}, {}, {}
    for name, model in models.items():
        start = time.perf_counter()
        rows, last = [], None
        with torch.inference_mode():
            for rec in sample_trajectory(model, schedule, x_T, ts, "ddim"):
                rows.append(rec.x0_hat)
                last = rec
        secs[name] = time.perf_counter() - start
        x0s[name], finals[name] = rows, last.x_prev
        idx[name], dist[name] = nearest(data, last.x_prev)
    return CopyRun(ts, x0s, finals, idx, dist, secs)
