"""An honest judge for the class-conditional Fashion-MNIST generator: a small CNN classifier and four numbers.

Train it (command line in :mod:`model.cli.judge`, training loop in :mod:`model.evaluation.judge_train`)::

    python -m model.cli.judge --data data/fashion --out checkpoints/fashion-judge

The judge is a 3-block CNN trained on the TRAIN split only (its test accuracy is in ``judge.json``).
Its penultimate layer (``feat_dim`` = 128 numbers after a ReLU) is the feature space of the FID and of
the diversity. Images everywhere in this module are grey uint8 (N, 28, 28) in 0…255, background 0
(black), the convention of :func:`model.training.fashion.load_split`; labels are int64 (N,) in 0…9.

The four numbers of a set of generated images with the classes they were asked for
(:func:`evaluate_samples`):

* **agreement**: share of images the judge classifies as the class asked for (:func:`model.evaluation.gen_metrics.agreement`).
* **FID**: Fréchet distance between Gaussians fitted to judge features of the images and of the real
  images of test[half:] (the second half of the test split; :func:`model.evaluation.gen_metrics.fid`).
* **diversity / real**: mean over classes of the mean pairwise feature distance within the class
  (:func:`model.evaluation.gen_metrics.diversity`), divided by the same number for ``per_class`` real images per class drawn from
  test[half:]. 1 means as varied as real garments; near 0 means one image per class, repeated.
* **near-copies**: share of images whose nearest TRAINING image (L2 over the 784 pixels scaled to
  [0, 1]) is closer than a threshold calibrated on real data: the 1st percentile of the nearest-training-
  image distances of the real images of test[half:] (:func:`model.evaluation.gen_metrics.calibrate_copy_threshold`). Real unseen
  images therefore score about 1 % by construction; a generator that memorises scores more.

:func:`reference_rows` gives the same numbers for four reference sets of ``per_class`` images per class,
all drawn (same seed) from test[:half], disjoint from the FID/diversity/threshold half:
real images, real images with a Gaussian blur of σ = 1 px, ½ real + ½ uniform noise, and uniform noise.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from model.evaluation.gen_metrics import (
    COPY_QUANTILE,
    agreement,
    calibrate_copy_threshold,
    diversity_per_class,
    feature_stats,
    fid_from_stats,
    near_copy_rate,
)
from model.training.fashion import CLASSES, load_split

ARCH = "judge-cnn"
WEIGHTS = "judge.safetensors"
META = "judge.json"
SIZE = 28  # the judge sees 28×28 images
BLUR_SIGMA = 1.0  # reference row "blurred": Gaussian σ in px (kernel radius 2, edges replicated)


class JudgeLoadError(RuntimeError):
    """A judge folder could not be read; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class JudgeConfig:
    """Architecture of :class:`Judge` (stored in ``judge.json`` beside the weights)."""

    channels: tuple[int, ...] = (32, 64, 128)  # one conv3×3 + BatchNorm + ReLU + 2×2 max-pool per entry
    feat_dim: int = 128  # penultimate layer: the FID / diversity feature space
    dropout: float = 0.3  # before the feature layer and before the class layer
    num_classes: int = len(CLASSES)
    mean: float = 0.2860  # normalisation of x/255 (Fashion-MNIST train pixel mean and std)
    std: float = 0.3530


class Judge(nn.Module):
    """CNN classifier. ``forward``: normalised float (B, 1, 28, 28) -> logits (B, num_classes).

    :meth:`logits` and :meth:`features` take uint8 images (N, 28, 28) in 0…255 and normalise inside.
    """

    def __init__(self, config: JudgeConfig | None = None):
        super().__init__()
        self.config = config or JudgeConfig()
        c = self.config
        layers, cin, size = [], 1, SIZE
        for cout in c.channels:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
            cin, size = cout, size // 2
        self.body = nn.Sequential(*layers)  # (B, 1, 28, 28) -> (B, C, 3, 3) for three blocks
        self.feat = nn.Sequential(
            nn.Flatten(), nn.Dropout(c.dropout), nn.Linear(cin * size * size, c.feat_dim), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.feat_dim, c.num_classes))
        self.meta: dict = {}  # judge.json of a loaded judge

    def normalise(self, images_uint8) -> torch.Tensor:
        """uint8 (N, 28, 28) in 0…255 -> float32 (N, 1, 28, 28), (x/255 - mean) / std."""
        x = torch.as_tensor(np.array(images_uint8, copy=True))  # a copy: the IDX arrays are read-only
        if x.dtype != torch.uint8 or x.ndim != 3 or tuple(x.shape[1:]) != (SIZE, SIZE):
            raise ValueError(f"the judge needs uint8 images of shape (N, 28, 28), got {x.dtype} {tuple(x.shape)}")
        return ((x.float() / 255.0 - self.config.mean) / self.config.std)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) normalised -> (B, num_classes)
        return self.head(self.feat(self.body(x)))

    def _run(self, images_uint8, part: str, batch: int) -> np.ndarray:
        if self.training:
            raise RuntimeError("call .eval() on the judge first (load_judge returns one in eval mode)")
        x = self.normalise(images_uint8)
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                f = self.feat(self.body(x[i : i + batch]))
                out.append(f if part == "features" else self.head(f))
        if not out:
            return np.zeros((0, self.config.feat_dim if part == "features" else self.config.num_classes), np.float32)
        return torch.cat(out).numpy()

    def logits(self, images_uint8, batch: int = 1000) -> np.ndarray:
        """uint8 (N, 28, 28) -> float32 (N, num_classes) class logits."""
        return self._run(images_uint8, "logits", batch)

    def features(self, images_uint8, batch: int = 1000) -> np.ndarray:
        """uint8 (N, 28, 28) -> float32 (N, feat_dim): the penultimate layer (after its ReLU)."""
        return self._run(images_uint8, "features", batch)

    def predict(self, images_uint8, batch: int = 1000) -> np.ndarray:
        """uint8 (N, 28, 28) -> int64 (N,) the judged class."""
        return self.logits(images_uint8, batch).argmax(1).astype(np.int64)


# ---------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------


def data_fingerprint(train_images: np.ndarray, test_images: np.ndarray) -> str:
    """First 16 hex digits of SHA-256 over the train and test image bytes (ties a calibration to its data)."""
    h = hashlib.sha256()
    for a in (train_images, test_images):
        h.update(np.ascontiguousarray(a, dtype=np.uint8).tobytes())
    return h.hexdigest()[:16]


def save_judge(judge: Judge, out_dir: Path, meta: dict) -> None:
    """Write ``judge.safetensors`` (weights) and ``judge.json`` (``arch``, ``config`` and ``meta``)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in judge.state_dict().items()}, str(out_dir / WEIGHTS))
    cfg = asdict(judge.config)
    cfg["channels"] = list(cfg["channels"])
    (out_dir / META).write_text(json.dumps({"arch": ARCH, "config": cfg, **meta}, indent=2) + "\n")


def load_judge(folder: Path) -> Judge:
    """A :class:`Judge` in eval mode from ``folder/judge.json`` + ``folder/judge.safetensors``; its
    ``meta`` holds the whole ``judge.json``. Raises :class:`JudgeLoadError` with what to do."""
    from safetensors.torch import load_file

    folder = Path(folder)
    how = f"train one with: python -m model.cli.judge --data data/fashion --out {folder}"
    if not (folder / META).is_file() or not (folder / WEIGHTS).is_file():
        raise JudgeLoadError(f"{folder} holds no {META} + {WEIGHTS}; {how}")
    try:
        meta = json.loads((folder / META).read_text())
        if meta.get("arch") != ARCH:
            raise ValueError(f"arch is {meta.get('arch')!r}, not {ARCH!r}")
        cfg = dict(meta["config"])
        cfg["channels"] = tuple(cfg["channels"])
        judge = Judge(JudgeConfig(**cfg))
        judge.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise JudgeLoadError(f"could not load the judge in {folder} ({exc}); {how}") from exc
    judge.meta = meta
    return judge.eval()


def accuracy(judge: Judge, images_uint8, labels) -> tuple[float, list[float]]:
    """(overall accuracy, per-class accuracies) of an eval-mode judge, each in [0, 1]."""
    pred, y = judge.predict(images_uint8), np.asarray(labels)
    per = [
        float((pred[y == k] == k).mean()) if (y == k).any() else float("nan") for k in range(judge.config.num_classes)
    ]
    return agreement(pred, y), per


# ---------------------------------------------------------------------------------
# Evaluating a set of samples against the test split, and the reference rows
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """Everything the four numbers compare against, computed once per (judge, data folder, per_class, seed).

    The test split is cut in two halves: test[:half] is the pool of the reference rows; test[half:] gives
    the FID statistics (all of it), the diversity denominator (``per_class`` images per class) and the
    near-copy threshold (its calibration).
    """

    train_images: np.ndarray  # (M, 28, 28) uint8: the training split, for near copies
    pool_images: np.ndarray  # (P, 28, 28) uint8: test[:half], the reference rows' pool
    pool_labels: np.ndarray  # (P,) int64
    mu: np.ndarray  # (D,) float64: judge-feature mean of test[half:]
    sigma: np.ndarray  # (D, D) float64: judge-feature covariance of test[half:]
    real_diversity: dict[int, float]  # per-class diversity of per_class images per class of test[half:]
    threshold: float  # near-copy threshold (L2 on [0, 1] pixels)
    half: int
    per_class: int
    seed: int
    notes: dict = field(default_factory=dict)  # how each part was defined, for the printed table and eval.json


def _pick_per_class(labels: np.ndarray, per_class: int, rng: np.random.Generator, where: str) -> np.ndarray:
    """Indices of ``per_class`` images of every class (sorted by class), drawn without replacement."""
    out = []
    for k in range(len(CLASSES)):
        idx = np.flatnonzero(labels == k)
        if len(idx) < per_class:
            raise ValueError(
                f"{where} has only {len(idx)} images of class {k} ({CLASSES[k]}); use --per-class <= {len(idx)}"
            )
        out.append(rng.choice(idx, per_class, replace=False))
    return np.concatenate(out)


def build_reference(judge: Judge, data_folder: Path, per_class: int = 50, seed: int = 0) -> Reference:
    """Load ``data_folder`` (train and test splits) and compute the :class:`Reference` statistics.

    The near-copy threshold comes from ``judge.json`` when it was calibrated there on the same data
    (same fingerprint); otherwise it is calibrated here, the same way.
    """
    if per_class < 2:
        raise ValueError(f"per_class must be at least 2 (diversity needs pairs), got {per_class}")
    x, _ = load_split(data_folder, "train")
    xt, yt = load_split(data_folder, "test")
    half = len(xt) // 2
    rest, rest_y = xt[half:], yt[half:]
    mu, sigma = feature_stats(judge.features(rest))
    rng = np.random.default_rng(seed + 1)  # seed + 1: not the same draw as the reference rows' pool
    pick = _pick_per_class(rest_y, per_class, rng, f"test[{half}:]")
    real_div = diversity_per_class(judge.features(rest[pick]), rest_y[pick])
    nc = judge.meta.get("near_copy", {})
    if nc.get("data_fingerprint") == data_fingerprint(x, xt) and "threshold" in nc:
        threshold, source = float(nc["threshold"]), "judge.json"
    else:
        threshold, source = calibrate_copy_threshold(rest, x), "calibrated now (judge.json has none for this data)"
    notes = {
        "fid": f"Fréchet distance of judge features (penultimate layer, {judge.config.feat_dim}-d) vs all "
        f"{len(rest)} images of test[{half}:]",
        "diversity": f"mean over classes of the mean pairwise judge-feature distance within a class, divided by "
        f"that of {per_class} real images per class from test[{half}:]",
        "near_copy": f"nearest training image (L2 over 784 pixels in [0, 1]) closer than {threshold:.4f} = the "
        f"{COPY_QUANTILE * 100:g}st percentile of test[{half}:]'s nearest-train distances ({source}); "
        f"unseen real images score about {COPY_QUANTILE * 100:g} % by construction",
        "references": f"{per_class} images per class drawn with seed {seed} from test[:{half}]",
    }
    return Reference(x, xt[:half], yt[:half], mu, sigma, real_div, threshold, half, per_class, seed, notes)


def evaluate_samples(
    images_uint8,
    asked_labels,
    judge: Judge,
    data_folder: Path | None = None,
    per_class: int = 50,
    *,
    reference: Reference | None = None,
    seed: int = 0,
) -> dict:
    """The four numbers of generated images uint8 (N, 28, 28) asked for classes int (N,) in 0…9.

    Returns ``{"n", "agreement", "fid", "diversity", "diversity_ratio", "near_copy_rate"}``; agreement and
    near_copy_rate are shares in [0, 1], diversity_ratio is relative to real (1 = as varied as real). Pass a
    ``reference`` from :func:`build_reference` to reuse it; otherwise one is built from ``data_folder``.
    """
    ref = reference or build_reference(judge, data_folder, per_class, seed)
    images, asked = np.asarray(images_uint8), np.asarray(asked_labels)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"need uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
    if asked.ndim != 1 or len(asked) != len(images):
        raise ValueError(f"need one label per image: {len(images)} images, labels of shape {asked.shape}")
    feats = judge.features(images)
    with torch.no_grad():
        pred = judge.head(torch.from_numpy(feats)).argmax(1).numpy()  # same as judge.predict(images)
    div = diversity_per_class(feats, asked)
    both = [k for k in div if k in ref.real_diversity]
    ratio = (
        float(np.mean([div[k] for k in both]) / np.mean([ref.real_diversity[k] for k in both]))
        if both
        else float("nan")
    )
    return {
        "n": int(len(images)),
        "agreement": agreement(pred, asked),
        "fid": fid_from_stats(*feature_stats(feats), ref.mu, ref.sigma),
        "diversity": float(np.mean(list(div.values()))) if div else float("nan"),
        "diversity_ratio": ratio,
        "near_copy_rate": near_copy_rate(images, ref.train_images, ref.threshold),
    }


def gaussian_blur(images_uint8, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """uint8 (N, H, W) -> uint8 (N, H, W): separable Gaussian blur of ``sigma`` px, kernel radius
    ceil(2σ), edges replicated, rounded back to 0…255."""
    r = max(1, math.ceil(2 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    x = np.pad(np.asarray(images_uint8, np.float64), ((0, 0), (r, r), (r, r)), mode="edge")
    h, w = x.shape[1] - 2 * r, x.shape[2] - 2 * r
    x = sum(k[i] * x[:, i : i + h, :] for i in range(2 * r + 1))
    x = sum(k[i] * x[:, :, i : i + w] for i in range(2 * r + 1))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


REFERENCE_ROWS = {
    "real": "real test images",
    "blur": f"real, Gaussian blur σ={BLUR_SIGMA:g} px",
    "half_noise": "½ real + ½ uniform noise",
    "noise": "uniform noise",
}


def reference_images(reference: Reference) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{row: (images uint8 (n, 28, 28), labels (n,))} of the four reference rows, n = 10 × per_class.

    The same ``per_class`` real images per class (drawn with ``reference.seed`` from test[:half]) under:
    ``real`` as they are; ``blur`` :func:`gaussian_blur` σ = 1 px; ``half_noise`` 0.5·real + 0.5·u with u
    uniform in [0, 255] per pixel, rounded and clipped to 0…255; ``noise`` u alone (uniform integers 0…255).
    """
    ref = reference
    rng = np.random.default_rng(ref.seed)
    pick = _pick_per_class(ref.pool_labels, ref.per_class, rng, f"test[:{ref.half}]")
    real, y = ref.pool_images[pick], ref.pool_labels[pick]
    u = rng.uniform(0, 255, size=real.shape)
    half = np.clip(np.round(0.5 * real + 0.5 * u), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, size=real.shape, dtype=np.uint8)
    return {"real": (real, y), "blur": (gaussian_blur(real), y), "half_noise": (half, y), "noise": (noise, y)}


def reference_rows(
    judge: Judge,
    data_folder: Path | None = None,
    per_class: int = 50,
    seed: int = 0,
    *,
    reference: Reference | None = None,
) -> dict[str, dict]:
    """{row: :func:`evaluate_samples` dict} for the four reference sets of :func:`reference_images`
    (keys of :data:`REFERENCE_ROWS`), asked labels = their true classes."""
    ref = reference or build_reference(judge, data_folder, per_class, seed)
    return {name: evaluate_samples(x, y, judge, reference=ref) for name, (x, y) in reference_images(ref).items()}
