"""Cached computations for the reverse-process pages ("Denoise one step", "Reverse trajectory").

Same pattern as :mod:`app.compute.core`: ``st.cache_data`` keyed on cheap exact keys (image
key = sha256 of the bytes, resolution, model key, t, seed, sampler settings); the tensors
and the model are passed as ``_``-prefixed arguments so they are not hashed. The model
itself is the shared read-only one from :func:`app.session.which_model.current_model`.

Progress bars are created *inside* the cached functions (a cached function may not
touch an element made outside it); on a cache hit Streamlit replays them in an instant.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from app.compute import estimates
from app.compute.progress import Progress, reporter
from app.server import lanes
from model.diffusion.forward import q_sample
from model.diffusion.guidance import as_prediction, guided_eps
from model.diffusion.guidance import guidance_help as guidance_help
from model.diffusion.guidance import in_interval as in_interval
from model.diffusion.trajectory import make_timesteps, sample_trajectory
from model.images import figure, generate
from model.images import slide as slide
from model.images.generate import default_guidance as default_guidance
from model.images.tensors import noise_to_uint8, tensor_to_uint8
from model.nets import hub as hub
from model.nets.network import LoadedModel
from model.serving.cost import suggested_steps as suggested_steps

SWEEP_POINTS = 40  # values of t in the denoise page's sweep
LONG_RUN_SECONDS = 30.0  # warn before runs estimated longer than this
PROGRESS_UPDATES = 50  # at most this many progress-bar updates per run


def fixed_noise(x0: torch.Tensor, seed: int) -> torch.Tensor:
    """The eps ~ N(0, I) used at every t for this seed, shaped like x0 (so moving t keeps the noise)."""
    return torch.randn(x0.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=x0.dtype)


def _noised(model: LoadedModel, x0: torch.Tensor, t: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Denoise's input at t: (x_t, eps), eq. 4 with the fixed noise for ``seed``."""
    eps = fixed_noise(x0, seed)
    x_t, _ = q_sample(model.schedule, x0, int(t), noise=eps)
    return x_t, eps


@st.cache_data(max_entries=256, show_spinner=False)
def noised_at(image_key: str, resolution: int, model: str, t: int, seed: int, _x0: torch.Tensor, _model: LoadedModel):
    """What Denoise shows before the network runs: ``dict(x_t, eps)``, tensors (1, C, R, R): the fixed noise for
    ``seed`` and x_t from eq. 4 with it (no network pass: the page draws the input at once, then asks the network).
    The same x_t and eps as :func:`denoise_at`'s."""
    x_t, eps = _noised(_model, _x0, t, seed)
    return dict(x_t=x_t, eps=eps)


@st.cache_data(max_entries=256, show_spinner=False)
def denoise_at(
    image_key: str,
    resolution: int,
    model: str,
    t: int,
    seed: int,
    _x0: torch.Tensor,
    _model: LoadedModel,
    label: int | None = None,
):
    """One denoising step at t: ``dict(x_t, eps, eps_hat, x0_hat, mse, psnr)``; tensors (1, C, R, R).

    ``label``: the class for a class-conditional model (None: "no label"). ``mse`` = mean((eps_hat - eps)^2);
    ``psnr`` = PSNR(x0_hat, x_0) in dB.
    """
    x_t, eps = _noised(_model, _x0, t, seed)
    with torch.inference_mode():  # x0_hat unclipped, what the network implies: eq. 15 for an eps-network
        eps_hat, x0_hat = _model.predict(x_t, int(t), label)
    return dict(
        x_t=x_t,
        eps=eps,
        eps_hat=eps_hat,
        x0_hat=x0_hat,
        mse=float((eps_hat - eps).square().mean()),
        psnr=figure.psnr(x0_hat, _x0),
    )


SWEEP_BATCH = 8  # t values per forward pass in the sweep


def sweep_timesteps(T: int, points: int = SWEEP_POINTS) -> list[int]:
    """``points`` evenly spaced t from 0 to T - 1."""
    return sorted({round(i * (T - 1) / (points - 1)) for i in range(points)})


def seconds_per_step(model: LoadedModel, resolution: int) -> float:
    """Seconds per step of a recorded run at this resolution: the sidebar's figure
    (:func:`app.compute.estimates.sidebar_step`: a measured forward pass plus the loop's work, memoised per model)."""
    return estimates.sidebar_step(model, resolution).per_pass()


@dataclass(frozen=True)
class TrajectorySettings:
    """One reverse run's settings, as the "Reverse trajectory" page runs them.

    Frozen, so hashable and equal by value: the page compares the stored run's settings with the current ones,
    the history keeps one run per exact setting, and the address carries run=1 only while they are equal.
    """

    image_key: str | None  # sha256 of the photo's bytes; None: from pure noise (t_start = T - 1)
    resolution: int  # px of the run (a substituted generator runs at its own size)
    model_key: str  # app.compute.which_model.model_key(), or "fashion" for the substituted generator
    t_start: int  # the start: the photo noised to x_{t_start} (T - 1 from pure noise)
    sampler: str  # "ddim" or "ddpm"
    eta: float  # DDIM η: 0 deterministic, 1 as random as DDPM; 0.0 for DDPM
    steps: int  # reverse steps actually run (network calls): at most t_start + 1
    seed: int  # seeds the start's noise and the sampler's
    label: int | None = None  # class y of a class-conditional model; None: unconditional
    guidance: float = 0.0  # classifier-free guidance scale w; 0.0 without a label

    def trajectory_args(self) -> dict:
        """The keyword arguments of :func:`trajectory` except the tensors and the model (``_x0``, ``_model``)."""
        return dict(
            image_key=self.image_key, resolution=self.resolution, model=self.model_key, t_start=self.t_start,
            sampler=self.sampler, eta=self.eta, steps=self.steps, seed=self.seed, label=self.label,
            guidance=self.guidance,
        )  # fmt: skip

    def sweep(self, steps: int) -> SweepSettings:
        """The t_start sweep of these settings with ``steps`` (the slider's, before the cut at t_start) per start."""
        return SweepSettings(
            self.image_key, self.resolution, self.model_key, self.sampler, self.eta, int(steps), self.seed,
            self.label, self.guidance,
        )  # fmt: skip


@dataclass(frozen=True)
class SweepSettings:
    """The settings of a t_start sweep (:func:`t_start_sweep`): a trajectory's, less t_start. Frozen: the page
    compares the stored sweep's with the current ones."""

    image_key: str | None  # sha256 of the photo's bytes; None: no photo, so no sweep
    resolution: int  # px
    model_key: str  # as in TrajectorySettings
    sampler: str  # "ddim" or "ddpm"
    eta: float  # DDIM η; 0.0 for DDPM
    steps: int  # reverse steps per start (fewer where fewer timesteps lie below t_start)
    seed: int  # the same seed for every start
    label: int | None = None  # class y; None: unconditional
    guidance: float = 0.0  # classifier-free guidance scale w

    def sweep_args(self) -> dict:
        """The keyword arguments of :func:`t_start_sweep` except the tensors and the model (``_x0``, ``_model``)."""
        return dict(
            image_key=self.image_key, resolution=self.resolution, model=self.model_key, sampler=self.sampler,
            eta=self.eta, steps=self.steps, seed=self.seed, label=self.label, guidance=self.guidance,
        )  # fmt: skip


@st.cache_data(max_entries=4, show_spinner=False)
def trajectory(
    image_key: str | None,
    resolution: int,
    model: str,
    t_start: int,
    sampler: str,
    eta: float,
    steps: int,
    seed: int,
    _x0: torch.Tensor | None,
    _model: LoadedModel,
    label: int | None = None,
    guidance: float = 0.0,
    _progress: Progress | None = None,
) -> tuple[figure.Run, tuple | None]:
    """Run the reverse process once per exact setting and keep it as a compact :class:`model.images.figure.Run`.

    ``image_key``/``_x0`` None means "from pure noise" (t_start = T - 1). A progress bar
    advances with the trajectory generator. At most 4 runs are cached per process.
    ``label``/``guidance``: class and classifier-free guidance scale w for a class-conditional model.

    :returns: ``(run, parts)``; with guidance, ``parts[k]`` holds the pictures (uint8, noise scale) of
        ε̂(x_t, y) and ε̂(x_t, ∅) at the k-th kept step (``run.kept``), else ``parts`` is None. They come
        from the same forward passes as the guided ε̃ that the sampler used (nothing is recomputed).
    """
    schedule = _model.schedule
    ts = make_timesteps(int(t_start), int(steps))
    n = len(ts)
    every = max(1, n // PROGRESS_UPDATES)
    report = reporter(_progress)
    report(0.0, f"{sampler.upper()}: step 0 of {n}")

    def on_step(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            report(done / total, f"{sampler.upper()}: step {done} of {total}{lanes.note()}")

    seen: list[tuple] = []  # this run's (cond, uncond) pictures, one per step; local to the call

    def eps_model(x_t: torch.Tensor, t: torch.Tensor):
        g = guided_eps(_model, x_t, t, label, float(guidance))
        if guidance:
            seen.append((noise_to_uint8(g.eps_cond[0]), noise_to_uint8(g.eps_uncond[0])))
        return as_prediction(g)  # (eps_tilde, x0_hat): x0_hat straight from the network output

    with torch.inference_mode(), lanes.long_run("reverse run") as long_run:  # one lane, stopped if the tab goes
        shape = (1, _model.channels, resolution, resolution)
        x_start, g = figure.start_sample(schedule, _x0, int(t_start), int(seed), shape)
        records = lanes.paced(sample_trajectory(eps_model, schedule, x_start, ts, sampler, float(eta), g), long_run)
        run = figure.record_run(records, _x0, on_step=on_step)
    parts = tuple(seen[i] for i in run.kept) if guidance else None
    return run, parts


@st.cache_data(max_entries=64, show_spinner=False)
def start_picture(s: TrajectorySettings, _x0: torch.Tensor | None, _model: LoadedModel):
    """x_{t_start}, where a run with settings ``s`` starts (the photo noised with the run's own seed, or pure noise),
    as uint8 (R, R, 3): shown before Run, so the page has a picture before anyone presses it. No network pass."""
    shape = (1, _model.channels, s.resolution, s.resolution)
    x_start, _ = figure.start_sample(_model.schedule, _x0, s.t_start, s.seed, shape)
    return tensor_to_uint8(x_start)


EMERGE_ROWS = 8  # steps shown in the "one of each class" figure


@st.cache_data(max_entries=8, show_spinner=False)
def one_of_each(
    model: str,
    guidance: float,
    sampler: str,
    eta: float,
    steps: int,
    seed: int,
    _model: LoadedModel,
    _progress: Progress | None = None,
):
    """One sample of every class in one batch (cond + uncond passes batched together).

    :returns: ``dict(final=[uint8 (R, R, 3)] per class, rows=[(t, [x0_hat uint8 per class])] at
        :data:`EMERGE_ROWS` evenly spaced steps, seconds=wall time)``.
    """
    import time

    labels = list(range(len(_model.classes)))
    ts = make_timesteps(_model.schedule.T - 1, int(steps))
    show = set(figure.pick_rows(len(ts), EMERGE_ROWS))
    report = reporter(_progress)
    report(0.0, f"One of each class: step 0 of {len(ts)}")
    t0 = time.perf_counter()
    rows, last = [], None
    g = torch.Generator().manual_seed(int(seed))
    with torch.inference_mode(), lanes.long_run("generation of one of each class") as long_run:
        for rec in lanes.paced(generate.trajectory(_model, labels, guidance, steps, sampler, eta, g), long_run):
            if rec.index in show:
                rows.append((rec.t, [tensor_to_uint8(rec.x0_hat[i]) for i in range(len(labels))]))
            last = rec
            report((rec.index + 1) / rec.num_steps, f"One of each class: step {rec.index + 1} of {rec.num_steps}")
    final = [tensor_to_uint8(last.x_prev[i]) for i in range(len(labels))]
    return dict(final=final, rows=rows, seconds=time.perf_counter() - t0)


SWEEP_T_STARTS = tuple(range(100, 1000, 100))  # the t_start sweep: 100, 200, ..., 900


def psnr_to_result(run: figure.Run) -> tuple[list[int], list[float]]:
    """How close each stored step's x̂₀ is to the picture the run ends on: ``(steps, dB)``, steps 1-based.

    Early in a run x̂₀ is a blurry guess and late it is sharp; the run's own result is what it sharpens into
    (against the photo the estimates of a run from t_start = 300 stayed flat at about 21.5 dB: the run ends on a
    picture near the photo, not on the photo). Computed on the stored panels (uint8), so inf where a panel
    equals the result.
    """

    def signed(a) -> torch.Tensor:  # uint8 (H, W, 3) -> [-1, 1]
        return torch.from_numpy(a).float() / 127.5 - 1.0

    final = signed(run.final)
    return [f.index + 1 for f in run.frames], [figure.psnr(signed(f.x0_hat), final) for f in run.frames]


def sweep_t_starts(T: int) -> list[int]:
    """The t_start values of the sweep that exist for a model with T steps."""
    return [t for t in SWEEP_T_STARTS if t <= T - 1]


@st.cache_data(max_entries=8, show_spinner=False)
def t_start_sweep(
    image_key: str,
    resolution: int,
    model: str,
    sampler: str,
    eta: float,
    steps: int,
    seed: int,
    _x0: torch.Tensor,
    _model: LoadedModel,
    label: int | None = None,
    guidance: float = 0.0,
    _progress: Progress | None = None,
) -> list[dict]:
    """How much of the photo survives: the same reverse process started from t_start = 100, 200, ..., 900.

    Each start uses the same seed (so the same ε for the noising, the same sampler noise), ``steps`` reverse steps
    (fewer when fewer timesteps lie below t_start) and the given sampler.

    :returns: one ``dict(t_start, steps, start, final, psnr)`` per start: ``start`` = x_{t_start} and ``final``
        = the sample after the last step, both uint8 (R, R, C->3); ``psnr`` = PSNR(final, x_0) in dB.
    """
    starts = sweep_t_starts(_model.schedule.T)
    plans = [(t0, make_timesteps(t0, int(steps))) for t0 in starts]
    total = sum(len(ts) for _, ts in plans)
    report = reporter(_progress)
    report(0.0, f"t_start sweep: 0 of {total} steps")
    done, rows = 0, []
    with torch.inference_mode(), lanes.long_run("t_start sweep") as long_run:
        for t0, ts in plans:
            x_start, g = figure.start_sample(_model.schedule, _x0, t0, int(seed))

            def eps_model(x_t: torch.Tensor, t: torch.Tensor):
                return as_prediction(guided_eps(_model, x_t, t, label, float(guidance)))

            last = None
            records = sample_trajectory(eps_model, _model.schedule, x_start, ts, sampler, float(eta), g)
            for rec in lanes.paced(records, long_run):
                last = rec
                done += 1
                if done % max(1, total // PROGRESS_UPDATES) == 0 or done == total:
                    report(done / total, f"t_start sweep: from t = {t0}, {done} of {total} steps")
            rows.append(
                dict(
                    t_start=t0,
                    steps=len(ts),
                    start=tensor_to_uint8(x_start),
                    final=tensor_to_uint8(last.x_prev),
                    psnr=figure.psnr(last.x_prev, _x0),
                )
            )
    return rows
