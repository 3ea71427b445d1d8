"""The "Questions students ask" page's door to ``model/``: cached runs for its three answers.

* Does it just copy? The exact denoiser of the Fashion subset against the bundled Fashion network
  (:mod:`model.evaluation.memorise`), and the particle version (:mod:`model.particles.memorise`).
* What does guidance really sample? :mod:`model.particles.tilted`.
* Can it fix my photo? RePaint with the chosen model (:mod:`model.diffusion.inpaint`); SDEdit is Reverse
  trajectory's own run from a noised photo (:func:`app.compute.reverse.trajectory`).

Results are ``st.cache_data`` keyed on frozen settings (and the image's sha256); pictures come back as uint8, so a
slider that scrubs a finished run only picks a stored picture.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from app.compute import models
from app.compute.progress import Progress, reporter
from app.server import lanes
from model.diffusion import inpaint
from model.diffusion.schedule import Schedule, make_schedule
from model.evaluation import memorise
from model.images import figure
from model.images.tensors import tensor_to_uint8
from model.nets import hub
from model.particles import memorise as particle_copies
from model.particles import tilted
from model.training.fashion import RES

COPY_ROWS = 8  # x0_hat pictures shown per denoiser


@st.cache_resource(show_spinner=False)
def lab_schedule() -> Schedule:
    """The particle lab's schedule (linear, T = 1000)."""
    return make_schedule("linear")


@st.cache_resource(show_spinner=False)
def fashion_subset() -> memorise.TrainingSet:
    """The stored Fashion subset (5,000 training and 1,000 test images), loaded once per process."""
    return memorise.load_subset()


def fashion_model():
    """The bundled Fashion generator, or None where it is not bundled."""
    return models.get_bundled("fashion") if hub.FASHION_MODEL.is_dir() else None


@st.cache_data(max_entries=16, show_spinner=False)
def copy_run(seed: int, steps: int, _net) -> dict:
    """The exact denoiser and the network (None: only the exact one) from the same noise (seed), DDIM.

    :returns: ``dict(ts, rows={name: [(t, uint8)]}, final={name: uint8}, nearest={name: uint8},
        distance={name: float}, seconds={name: float}, test_distances=np.ndarray, threshold=float)``.
    """
    data = fashion_subset()
    schedule = _net.schedule if _net is not None else make_schedule("linear")
    models = {"exact denoiser": memorise.empirical_eps_model(schedule, data)}
    if _net is not None:
        models["Fashion network"] = lambda x, t: _net.predict(x, t, None)  # "no label": the unconditional model
    x_T = torch.randn(1, 1, RES, RES, generator=torch.Generator().manual_seed(int(seed)))
    run = memorise.copy_test(schedule, data, models, x_T, int(steps))
    show = figure.pick_rows(len(run.ts), COPY_ROWS)
    tests = memorise.test_nn_distances(data)
    return dict(
        ts=run.ts,
        rows={k: [(run.ts[i], tensor_to_uint8(v[i])) for i in show] for k, v in run.x0_hat.items()},
        final={k: tensor_to_uint8(v) for k, v in run.final.items()},
        nearest={k: tensor_to_uint8(data.x[int(i[0])]) for k, i in run.nearest_index.items()},
        distance={k: float(d[0]) for k, d in run.nearest_distance.items()},
        seconds=dict(run.seconds),
        test_distances=tests.numpy(),
        threshold=float(tests.median()) * memorise.NEAR_COPY,
    )


@st.cache_data(max_entries=32, show_spinner=False)
def points_copy(n: int, seed: int, train: bool) -> tuple[particle_copies.CopyPoint, dict[str, np.ndarray]]:
    """One point of the particle memorisation curve (``train``: with the small network, seconds on a CPU)."""
    s = particle_copies.CopySettings(n=int(n), seed=int(seed))
    point, samples = particle_copies.measure(lab_schedule(), s, train=train)
    return point, {k: v.numpy() for k, v in samples.items()}


@st.cache_data(max_entries=32, show_spinner=False)
def guidance(settings: tilted.GuidanceSettings) -> tilted.GuidanceResult:
    """Every method of :data:`model.particles.tilted.METHODS` at these settings (about a second)."""
    return tilted.compare(lab_schedule(), tilted.two_classes(), settings)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 pictures (peak 255; the same as :func:`model.images.figure.psnr` on [-1, 1] up to
    the pictures' rounding)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@dataclass(frozen=True)
class InpaintSettings:
    """One inpainting run; frozen, so a cache key and comparable with the stored run's."""

    image_key: str
    resolution: int
    model_key: str
    box: tuple[float, float, float, float]  # left, top, right, bottom as fractions of the side
    sampler: str = "ddpm"
    steps: int = 25
    resample: int = 1
    seed: int = 0


def hole(s: InpaintSettings) -> torch.Tensor:
    """The settings' ``known`` mask (1 = keep), checked: ``ValueError`` with a sentence for a bad hole."""
    known = inpaint.rectangle_mask(s.resolution, *s.box)
    inpaint.check_hole(known)
    return known


def with_hole(x0: torch.Tensor, known: torch.Tensor) -> np.ndarray:
    """The photo with its hole drawn in mid grey: uint8 (H, W, 3)."""
    return tensor_to_uint8(x0 * known)


@st.cache_data(max_entries=8, show_spinner=False)
def inpaint_run(s: InpaintSettings, _x0: torch.Tensor, _model, _progress: Progress | None = None) -> dict:
    """RePaint on the photo: every step's x_t, kept part, sampler's part and x0_hat as uint8, the result, the blur
    fill, and PSNR inside the hole for both. ``_model``: the chosen :class:`LoadedModel` ("no label" if conditional).
    """
    known = hole(s)
    g = torch.Generator().manual_seed(int(s.seed))
    frames = []
    report = reporter(_progress)
    report(0.0, "Filling in: step 0")
    start = time.perf_counter()
    with torch.inference_mode(), lanes.long_run("inpainting") as long_run:
        recs = inpaint.repaint(
            lambda x, t: _model.predict(x, t, None), _model.schedule, _x0, known, s.steps, s.sampler, s.resample, g
        )
        last = None
        for rec in lanes.paced(recs, long_run):
            frames.append(
                dict(
                    t=rec.t,
                    x_t=tensor_to_uint8(rec.x_t),
                    known=tensor_to_uint8(rec.known * known),
                    unknown=tensor_to_uint8(rec.unknown * (1 - known)),
                    x0_hat=tensor_to_uint8(rec.x0_hat),
                    x_prev=tensor_to_uint8(rec.x_prev),
                )
            )
            last = rec
            report((rec.index + 1) / rec.num_steps, f"Filling in: step {rec.index + 1} of {rec.num_steps}")
    blur = inpaint.blur_fill(_x0, known)
    return dict(
        frames=frames,
        final=tensor_to_uint8(last.x_prev),
        blur=tensor_to_uint8(blur),
        psnr_fill=inpaint.psnr_in_hole(last.x_prev, _x0, known),
        psnr_blur=inpaint.psnr_in_hole(blur, _x0, known),
        seconds=time.perf_counter() - start,
    )
