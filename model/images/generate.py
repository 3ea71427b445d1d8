"""Generate new images from pure noise, with classifier-free guidance for class-conditional models.

    python -m model.cli.generate --model fashion --label all --per-class 50 --steps 50 --out DIR
        [--label NAME|INDEX|all] [--guidance W] [--sampler ddim|ddpm] [--eta 0] [--seed 0] [--batch 100]

writes ``DIR/samples.npz`` (``images`` uint8, (N, H, W) for a grey model or (N, H, W, 3); ``labels``
int64 (N,): the class asked for, or -1 for an unconditional model) and ``DIR/grid.png`` (one row per
class), and prints one line per file. ``--model`` takes ``bundled`` (the photo model), ``fashion``
(the bundled Fashion-MNIST generator, the default), a folder or a Hub id. Bad input gets one
``error:`` line and exit code 2.

The app's "Pure noise" run and "One of each class" button use the same defaults
(:data:`DEFAULT_STEPS`, :data:`DEFAULT_SAMPLER`, :func:`default_guidance`) and the same trajectory
generator (:func:`model.diffusion.trajectory.sample_trajectory`), so the command and the app give the same pictures
for the same seed and batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from model.diffusion.guidance import guided_eps_model
from model.diffusion.trajectory import StepRecord, make_timesteps, sample_trajectory
from model.images.tensors import tensor_to_uint8

DEFAULT_MODEL = "fashion"
DEFAULT_STEPS = 50
DEFAULT_SAMPLER = "ddim"
# Guidance scale w of the app and the command for a guidable model whose card recommends none. A model's card
# names its own in classes.json ("recommended_guidance", LoadedModel.recommended_guidance): the bundled Fashion
# generator's is w = 2, measured with its guidance interval (checkpoints/fashion-unet/README.md, bench/guidance.py).
DEFAULT_GUIDANCE = 0.0


def default_guidance(model) -> float:
    """The guidance scale w a newcomer gets: the one ``model``'s card recommends, else :data:`DEFAULT_GUIDANCE` for a
    model that supports guidance, else 0 (guidance needs a "no label" index)."""
    if not getattr(model, "guidable", False):
        return 0.0
    w = getattr(model, "recommended_guidance", None)
    return DEFAULT_GUIDANCE if w is None else float(w)


def resolve_label(classes: Sequence[str] | None, spec) -> int | None:
    """A class given by name (case-insensitive; the part before a "/" also counts, so "t-shirt"),
    by index, or "all" (-> None). Raises ``ValueError`` with one sentence listing the choices."""
    s = str(spec).strip().lower()
    if s == "all":
        return None
    if not classes:
        raise ValueError(f"this model is unconditional: it has no classes, so --label must be 'all' (got {spec!r})")
    if s.lstrip("-").isdigit():
        i = int(s)
        if 0 <= i < len(classes):
            return i
        raise ValueError(f"class index {i} is out of range: this model has classes 0-{len(classes) - 1}")
    for i, name in enumerate(classes):
        n = name.lower()
        if s in (n, n.split("/")[0], n.replace(" ", "-"), n.replace(" ", "_")):
            return i
    raise ValueError(f"unknown class {spec!r}: use one of {', '.join(c.lower() for c in classes)}, an index, or 'all'")


def label_list(model, label: int | None, per_class: int) -> list[int]:
    """The class asked for, per sample: ``per_class`` of ``label`` (or of every class when ``label`` is
    None), or ``per_class`` times -1 for an unconditional model."""
    if per_class < 1:
        raise ValueError("--per-class must be at least 1")
    if not model.conditional:
        if label is not None:
            raise ValueError("this model is unconditional: it takes no class label")
        return [-1] * per_class
    classes = [label] if label is not None else list(range(len(model.classes)))
    return [c for c in classes for _ in range(per_class)]


def trajectory(
    model,
    labels: Sequence[int],
    guidance: float,
    steps: int = DEFAULT_STEPS,
    sampler: str = DEFAULT_SAMPLER,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    resolution: int | None = None,
) -> Iterator[StepRecord]:
    """The reverse trajectory of a batch from pure noise: ``len(labels)`` samples (label -1: unconditional).

    Yields :class:`model.diffusion.trajectory.StepRecord` (x_t, guided eps_hat, x0_hat; (B, C, R, R)) at every step.
    """
    labels = [int(v) for v in labels]
    y = None if all(v < 0 for v in labels) else torch.tensor(labels, dtype=torch.long)
    if y is not None and bool((y < 0).any()):
        raise ValueError("mix of conditional and unconditional labels")
    eps_model = guided_eps_model(model, y, float(guidance))
    res = int(resolution or model.resolution)
    x_T = torch.randn((len(labels), model.channels, res, res), generator=generator)
    ts = make_timesteps(model.schedule.T - 1, int(steps))
    return sample_trajectory(eps_model, model.schedule, x_T, ts, sampler, float(eta), generator)


@torch.inference_mode()
def generate(
    model,
    labels: Sequence[int],
    guidance: float,
    steps: int = DEFAULT_STEPS,
    sampler: str = DEFAULT_SAMPLER,
    eta: float = 0.0,
    seed: int = 0,
    batch: int = 100,
    resolution: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Final samples as uint8: (N, R, R) for a grey model, (N, R, R, 3) for RGB. One generator
    (``seed``) is drawn from chunk after chunk of ``batch`` samples."""
    g = torch.Generator().manual_seed(int(seed))
    out, done = [], 0
    total = -(-len(labels) // batch) * len(make_timesteps(model.schedule.T - 1, int(steps)))  # chunks x steps
    for start in range(0, len(labels), batch):
        chunk = labels[start : start + batch]
        last = None
        for rec in trajectory(model, chunk, guidance, steps, sampler, eta, g, resolution):
            last = rec
            done += 1
            if on_step is not None:
                on_step(done, total)
        out.extend(tensor_to_uint8(last.x_prev[i]) for i in range(len(chunk)))
    arr = np.stack(out)  # (N, R, R, 3)
    return arr[..., 0].copy() if model.channels == 1 else arr


def grid_png(images: np.ndarray, labels: Sequence[int], classes: Sequence[str] | None, cols: int = 10) -> Image.Image:
    """Samples as a grid: one row per class asked for (at most ``cols`` per row), the class name on the left."""
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    n, h, w = images.shape[:3]
    scale = max(1, 64 // h)
    rows: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        rows.setdefault(int(lab), []).append(i)
    if len(rows) == 1 and -1 in rows:  # unconditional: wrap the samples in rows of ``cols``
        idx = rows[-1]
        rows = {-1 - k: idx[k * cols : (k + 1) * cols] for k in range(-(-len(idx) // cols))}
    margin = 96 if classes else 0
    cell = h * scale + 2
    img = Image.new("RGB", (margin + cols * cell, len(rows) * cell), "white")
    draw = ImageDraw.Draw(img)
    for r, (lab, idx) in enumerate(rows.items()):
        if classes and lab >= 0:
            draw.text((4, r * cell + cell // 2 - 6), classes[lab], fill="black")
        for c, i in enumerate(idx[:cols]):
            tile = Image.fromarray(images[i]).resize((w * scale, h * scale), Image.Resampling.NEAREST)
            img.paste(tile, (margin + c * cell + 1, r * cell + 1))
    return img
