"""The blog figure, made from a reverse trajectory: rows are steps, columns are x_t | eps_hat | x0_hat.

Everything here is pure (numpy, Pillow, torch; no Streamlit, no Plotly), so the app's
download buttons, the command line and the benchmark share the same functions:

* :func:`start_sample` builds the starting x (a photo noised to ``t_start``, or pure noise)
  and the generator the sampler keeps drawing from;
* :func:`record_run` consumes :func:`model.diffusion.trajectory.sample_trajectory` and keeps a compact
  :class:`Run` (uint8 panels plus per-step numbers) that a step slider can scrub;
* :func:`grid_image` and :func:`gif_bytes` turn StepRecords or stored :class:`Frame` s into
  the grid PNG and the animated GIF (the 16:9 slide is :mod:`model.images.slide`; the panels' names and
  the fonts that draw them are :mod:`model.images.labels`).

Panels use the project's one normalisation: images map [-1, 1] to [0, 255]; noise maps
[-3, 3] to [black, white] (:data:`model.images.tensors.NOISE_RANGE`). Small panels are upscaled
with nearest-neighbour so pixels stay pixels.

Command line (teachers making slides; parsing and output in :mod:`model.cli.figure`)::

    python -m model.figure IMAGE --t-start 999 --steps 50 --sampler ddim [--eta 0] [--rows 10]
        [--res 64] [--seed 0] [--model DIR_OR_HUB_ID] --out figure.png [--gif anim.gif]

``IMAGE`` may be the word ``noise`` to start from pure noise (generation).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from model.diffusion.forward import q_sample
from model.diffusion.schedule import Schedule
from model.diffusion.trajectory import StepRecord
from model.images.labels import label_font, panel_labels, unicode_font
from model.images.tensors import noise_to_uint8, tensor_to_uint8

HEADER_PX = 24  # column-header band above the grid
LABEL_PX = 72  # "t = ..." band left of the grid
GAP_PX = 4  # between cells
MIN_CELL_PX = 128  # panels are upscaled (integer factor, nearest) to at least this size
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
DEFAULT_MAX_BYTES = 48 * 2**20  # a Run keeps at most this much of uint8 panels
GIF_MAX_FRAMES = 120


# ---------------------------------------------------------------------------------
# Frames: one step's three panels as uint8 pictures
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One step's panels, ready to draw. Arrays are (H, W, 3) uint8.

    ``index``: 0-based step number of ``num_steps``; ``t``: the input's timestep index.
    ``x_t`` and ``x0_hat`` map [-1, 1] to [0, 255]; ``eps_hat`` uses the ±3 noise scale.
    """

    index: int
    num_steps: int
    t: int
    x_t: np.ndarray
    eps_hat: np.ndarray
    x0_hat: np.ndarray

    def panels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x_t, self.eps_hat, self.x0_hat


def frame_from_record(rec: StepRecord, b: int = 0) -> Frame:
    """Image ``b`` of a StepRecord's batch as a :class:`Frame`."""
    return Frame(
        rec.index,
        rec.num_steps,
        rec.t,
        tensor_to_uint8(rec.x_t[b]),
        noise_to_uint8(rec.eps_hat[b]),
        tensor_to_uint8(rec.x0_hat[b]),
    )


def as_frames(steps: Iterable[StepRecord | Frame]) -> list[Frame]:
    """Accept StepRecords or Frames (or a mix) and return Frames."""
    return [s if isinstance(s, Frame) else frame_from_record(s) for s in steps]


# ---------------------------------------------------------------------------------
# Which steps to show
# ---------------------------------------------------------------------------------


def pick_rows(n: int, rows: int) -> list[int]:
    """``rows`` evenly spaced step indices out of ``n``, always the first and last (all if rows >= n)."""
    if n < 1 or rows < 1:
        raise ValueError("need n >= 1 and rows >= 1")
    if rows >= n:
        return list(range(n))
    if rows == 1:
        return [n - 1]
    out: list[int] = []
    for k in range(rows):
        i = round(k * (n - 1) / (rows - 1))
        if not out or i > out[-1]:
            out.append(i)
    return out


def every_kth(n: int, k: int) -> list[int]:
    """Steps 0, k, 2k, ... and always the last one."""
    if n < 1 or k < 1:
        raise ValueError("need n >= 1 and k >= 1")
    out = list(range(0, n, k))
    if out[-1] != n - 1:
        out.append(n - 1)
    return out


# ---------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------


def cell_px(res: int) -> int:
    """Side of one drawn panel: ``res`` times the smallest integer factor reaching MIN_CELL_PX."""
    return res * max(1, math.ceil(MIN_CELL_PX / res))


def grid_size(rows: int, res: int) -> tuple[int, int]:
    """(width, height) in px of a grid with ``rows`` rows of ``res``-px panels."""
    c = cell_px(res)
    return LABEL_PX + 3 * (c + GAP_PX), HEADER_PX + rows * (c + GAP_PX)


def cell_origin(row: int, col: int, res: int) -> tuple[int, int]:
    """Top-left (x, y) of the panel at ``row``, ``col`` (0 = x_t, 1 = eps_hat, 2 = x0_hat)."""
    c = cell_px(res)
    return LABEL_PX + col * (c + GAP_PX), HEADER_PX + row * (c + GAP_PX)


def upscale(arr: np.ndarray, side: int) -> Image.Image:
    img = Image.fromarray(arr)
    return img if img.width == side else img.resize((side, side), Image.Resampling.NEAREST)


def _draw_headers(draw: ImageDraw.ImageDraw, res: int) -> None:
    c = cell_px(res)
    font, unicode_ok = unicode_font(15)
    for col, name in enumerate(panel_labels(unicode_ok)):
        x, _ = cell_origin(0, col, res)
        draw.text((x + c // 2, HEADER_PX // 2), name, fill=INK, font=font, anchor="mm")


def grid_image(
    steps: Sequence[StepRecord | Frame], rows: int | None = 10, indices: Sequence[int] | None = None
) -> Image.Image:
    """The blog figure: one row per chosen step, columns x_t | eps_hat | x0_hat, "t = ..." on the left.

    :param steps: StepRecords (as yielded by ``sample_trajectory``) or Frames, in step order.
    :param rows: how many evenly spaced rows (first and last step always included); ignored
        when ``indices`` (positions in ``steps``) is given.
    :returns: an RGB image of :func:`grid_size` px.
    """
    frames = as_frames(steps)
    if not frames:
        raise ValueError("no steps to draw")
    idx = list(indices) if indices is not None else pick_rows(len(frames), rows or len(frames))
    res = frames[0].x_t.shape[0]
    c = cell_px(res)
    img = Image.new("RGB", grid_size(len(idx), res), BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = label_font(14)
    _draw_headers(draw, res)
    for row, i in enumerate(idx):
        f = frames[i]
        for col, arr in enumerate(f.panels()):
            img.paste(upscale(arr, c), cell_origin(row, col, res))
        _, y = cell_origin(row, 0, res)
        draw.text((LABEL_PX // 2, y + c // 2 - 9), f"t = {f.t}", fill=INK, font=font, anchor="mm")
        draw.text(
            (LABEL_PX // 2, y + c // 2 + 9),
            f"step {f.index + 1}",
            fill=(110, 110, 110),
            font=label_font(11),
            anchor="mm",
        )
    return img


def strip_image(frame: Frame) -> Image.Image:
    """One step as a single row x_t | eps_hat | x0_hat with headers and its "t = ..." label (a GIF frame)."""
    return grid_image([frame], indices=[0])


def gif_bytes(
    steps: Sequence[StepRecord | Frame],
    max_frames: int = GIF_MAX_FRAMES,
    ms_per_frame: int = 80,
    hold_last_ms: int = 1500,
) -> bytes:
    """An animated GIF of the three panels through the steps (at most ``max_frames``, evenly picked; loops)."""
    frames = as_frames(steps)
    if not frames:
        raise ValueError("no steps to draw")
    idx = pick_rows(len(frames), max_frames)
    pictures = [strip_image(frames[i]) for i in idx]
    durations = [ms_per_frame] * len(pictures)
    durations[-1] = max(ms_per_frame, hold_last_ms)
    buf = io.BytesIO()
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------
# Running and recording a trajectory
# ---------------------------------------------------------------------------------


def start_sample(
    schedule: Schedule, x0: torch.Tensor | None, t_start: int, seed: int, shape: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Generator]:
    """The trajectory's starting point and the generator the sampler keeps drawing from.

    With ``x0`` (1, 3, R, R) in [-1, 1]: x_{t_start} = q_sample(x0, t_start) (Ho et al. eq. 4).
    Without (``x0=None``): pure noise N(0, I) of ``shape`` (generation; use t_start = T - 1).
    The same seed gives the same start and the same sampler noise.
    """
    g = torch.Generator().manual_seed(int(seed))
    if x0 is None:
        if shape is None:
            raise ValueError("give x0 or a shape")
        return torch.randn(tuple(shape), generator=g), g
    x_t, _ = q_sample(schedule, x0, int(t_start), generator=g)
    return x_t, g


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB between images in [-1, 1], both clipped (peak-to-peak 2): 10 log10(4 / MSE), MSE over all
    of ``x``; inf for identical images. The project's one PSNR (pages, figures and ``model.evaluation.evaluate``)."""
    mse = float(((x.clamp(-1, 1).double() - ref.clamp(-1, 1).double()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(4.0 / mse)


@dataclass(frozen=True)
class Run:
    """A finished trajectory kept compactly for scrubbing and export.

    ``ts[i]`` / ``t_prevs[i]``: timestep indices of step i (t_prev = -1: to the clean image).
    ``eps_rms[i]``: RMS of eps_hat (‖eps_hat‖ / sqrt(#pixels)); ``psnr[i]``: PSNR(x0_hat, x_0) in dB,
    or None when the run started from pure noise. ``kept``: the step indices whose panels are
    stored in ``frames`` (every step unless that would exceed the byte budget). ``final``: the
    sample after the last step, (H, W, 3) uint8. ``seconds``: wall time of the run.
    """

    ts: tuple[int, ...]
    t_prevs: tuple[int, ...]
    eps_rms: tuple[float, ...]
    psnr: tuple[float, ...] | None
    kept: tuple[int, ...]
    frames: tuple[Frame, ...]
    final: np.ndarray
    seconds: float

    @property
    def num_steps(self) -> int:
        return len(self.ts)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for f in self.frames for a in f.panels()) + self.final.nbytes


def keep_stride(num_steps: int, res: int, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Store every k-th step's panels so that a run stays under ``max_bytes`` (k = 1 when it fits)."""
    per_step = 3 * res * res * 3
    return max(1, math.ceil(num_steps * per_step / max_bytes))


def record_run(
    records: Iterable[StepRecord],
    x0: torch.Tensor | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_step: Callable[[int, int], None] | None = None,
) -> Run:
    """Consume a trajectory (``sample_trajectory(...)``) into a :class:`Run`.

    :param x0: the clean image (1, 3, R, R) for PSNR, or None (generation).
    :param on_step: called as ``on_step(done, total)`` after each step (progress bars).
    """
    t0 = time.perf_counter()
    ts, tps, rms, ps, kept, frames = [], [], [], [], [], []
    keep: set[int] | None = None
    last = None
    for rec in records:
        if keep is None:
            keep = set(every_kth(rec.num_steps, keep_stride(rec.num_steps, rec.x_t.shape[-1], max_bytes)))
        ts.append(rec.t)
        tps.append(rec.t_prev)
        rms.append(float(rec.eps_hat.float().square().mean().sqrt()))
        if x0 is not None:
            ps.append(psnr(rec.x0_hat, x0))
        if rec.index in keep:
            kept.append(rec.index)
            frames.append(frame_from_record(rec))
        last = rec
        if on_step is not None:
            on_step(rec.index + 1, rec.num_steps)
    if last is None:
        raise ValueError("the trajectory yielded no steps")
    return Run(
        ts=tuple(ts),
        t_prevs=tuple(tps),
        eps_rms=tuple(rms),
        psnr=tuple(ps) if x0 is not None else None,
        kept=tuple(kept),
        frames=tuple(frames),
        final=tensor_to_uint8(last.x_prev),
        seconds=time.perf_counter() - t0,
    )


def keep_recent(runs: Sequence[Run], new: Run, max_runs: int = 4, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Run]:
    """The runs a session keeps to compare: ``new`` first, then the older ones (newest first), as many as fit.

    At most ``max_runs`` runs and, together, at most ``max_bytes`` of panels (the same cap as one run, so a
    session never holds more than before); ``new`` is always kept, and ``runs`` already holding ``new`` (the same
    object) do not keep it twice.
    """
    kept, total = [new], new.nbytes
    for run in runs:
        if run is new:
            continue
        if len(kept) >= max_runs or total + run.nbytes > max_bytes:
            break
        kept.append(run)
        total += run.nbytes
    return kept


def frame_near_t(run: Run, t: int) -> Frame:
    """The stored frame whose t is closest to ``t`` (ties: the earlier step), for comparing runs on one t axis."""
    return min(run.frames, key=lambda f: (abs(f.t - int(t)), f.index))
