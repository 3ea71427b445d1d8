"""The sampler race: diffusers' own schedulers, each run from the same noise, counting network evaluations.

Every scheduler is built fresh for every run (:func:`make_scheduler`; they keep state between ``set_timesteps`` and
``step``, so one must never be shared between sessions or runs) from the model's own schedule
(:meth:`model.diffusion.schedule.Schedule.to_scheduler_config`). Two settings are ours, on purpose:

* ``clip_sample``: DDPM's, DDIM's and Heun's ``True`` clamps x0_hat to [-1, 1] at every step. The Fashion generator
  was trained and is sampled with it (its config says so, and the flow schedulers' velocity clamps its x0_hat too:
  :func:`eps_network_model`); particles are not images, so the particle race turns it off.
* ``timestep_spacing="trailing"`` for DDPM and DDIM: their default ``"leading"`` starts 8 steps at t = 875, not at
  t = 999, so they would start from a state that is not pure noise. Every other scheduler starts at t = 999 already.

A :class:`RaceModel` answers both kinds of scheduler: ``eps(x_t, t)`` for the eps-prediction ones (t a float tensor in
diffusers' 0 .. 999 units) and ``velocity(x_sigma, sigma)`` for the flow-matching ones.
:func:`run_one` records the state at the start of every step in the flow frame x / (sqrt(alpha_bar) + sqrt(1 - alpha_bar))
(:func:`model.particles.flow.to_flow_coords`), so the paths of all schedulers are drawn, and their straightness
compared, in one frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from model.diffusion.schedule import Schedule, alpha_bar_at
from model.particles import flow
from model.particles.paths import straightness

# name -> (diffusers class name, what the network must give it, extra config)
SCHEDULERS: dict[str, tuple[str, str, dict]] = {
    "DDPM": ("DDPMScheduler", "eps", {"timestep_spacing": "trailing"}),
    "DDIM": ("DDIMScheduler", "eps", {"timestep_spacing": "trailing"}),
    "Euler": ("EulerDiscreteScheduler", "eps", {}),
    "Heun": ("HeunDiscreteScheduler", "eps", {}),
    "DPM-Solver++": ("DPMSolverMultistepScheduler", "eps", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "UniPC": ("UniPCMultistepScheduler", "eps", {}),
    "FlowMatch Euler": ("FlowMatchEulerDiscreteScheduler", "velocity", {}),
    "FlowMatch Heun": ("FlowMatchHeunDiscreteScheduler", "velocity", {}),
}
STOCHASTIC = ("DDPM",)  # ancestral sampling: its end point is not the ODE's, whatever the step count


def expected_evaluations(name: str, num_steps: int) -> int:
    """Network evaluations a scheduler spends on ``num_steps`` steps: 2N - 1 for the Heun pair (two per step, one on
    the last step to sigma = 0), N for the others."""
    return 2 * num_steps - 1 if "Heun" in name else num_steps


def make_scheduler(name: str, schedule: Schedule, clip_sample: bool | None = None):
    """A fresh diffusers scheduler for ``schedule``, configured as diffusers' own ``from_config`` would configure it
    from the model's scheduler config: every key of :meth:`~model.diffusion.schedule.Schedule.to_scheduler_config`
    the class accepts, then the race's own settings (:data:`SCHEDULERS`).

    ``clip_sample`` (the schedulers that have it: DDPM, DDIM, Heun) defaults to the schedule's. Heun has it too: built
    without it, Heun sampled the Fashion generator unclipped, unlike diffusers' own loop with the model's config, and
    its 4-step pictures came out speckled (``tests/unit/model/particles/test_race_heun.py`` runs both loops)."""
    import inspect

    import diffusers

    cls_name, kind, extra = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    if kind == "velocity":
        return cls(num_train_timesteps=schedule.T)
    accepted = inspect.signature(cls.__init__).parameters
    cfg = {k: v for k, v in schedule.to_scheduler_config().items() if k in accepted}
    if clip_sample is not None and "clip_sample" in accepted:
        cfg["clip_sample"] = clip_sample
    return cls(**{**cfg, **extra})


def heun_last_check(name: str, num_steps: int, schedule: Schedule) -> tuple[float, float]:
    """(sigma, gain) of a Heun scheduler's last corrected step: the sigma it ends at, and by how much the average of
    its two slopes multiplies a jump of x0_hat between its two evaluations.

    With d_1 = (x - D_1) / s_0, the predictor x' = x + (s_1 - s_0) d_1 and d_2 = (x' - D_2) / s_1 = d_1 + (D_1 - D_2)
    / s_1, Heun's x + (s_1 - s_0) (d_1 + d_2) / 2 is the predictor plus (s_1 - s_0) (D_1 - D_2) / (2 s_1): the gain is
    (s_0 - s_1) / (2 s_1). diffusers' Heun ends that step at the schedule's smallest sigma (0.01 for the linear
    schedule; 0.001 for the flow one), where the exact x0_hat of a point set snaps to the nearest point, so at few
    steps the gain is large and the paths overshoot. ``num_steps`` >= 2."""
    sched = make_scheduler(name, schedule)
    sched.set_timesteps(num_steps)
    sigmas = [float(s) for s in sched.sigmas[::2]]  # (s_0, s_1, s_1, ..., s_N-1, s_N-1, 0)[::2]: one per step
    s0, s1 = sigmas[-2], sigmas[-1]
    return s1, (s0 - s1) / (2 * s1)


@dataclass(frozen=True)
class RaceModel:
    """The network seen by the schedulers. ``eps(x_t (B, ...), t (B,) float) -> eps_hat``;
    ``velocity(x_sigma (B, ...), sigma (B,)) -> v_hat``."""

    eps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RaceRun:
    """One scheduler at one step count: the final sample (B, ...), the path in the flow frame (N + 1, B, ...)
    (the state at the start of each of the N steps, then the final sample), the network evaluations spent, and the
    mean straightness of the paths (:func:`model.particles.paths.straightness`)."""

    name: str
    num_steps: int
    final: torch.Tensor
    path: torch.Tensor
    evaluations: int
    straightness: float


def run_one(
    name: str, num_steps: int, model: RaceModel, schedule: Schedule, noise: torch.Tensor, seed: int = 0, **kw
) -> RaceRun:
    """Sample with scheduler ``name`` in ``num_steps`` steps from ``noise`` (B, ...) ~ N(0, I).

    The start is ``noise * init_noise_sigma`` (157 for Euler and Heun on the linear schedule: they work on
    x / sqrt(alpha_bar)). Random draws (DDPM) come from a generator seeded with ``seed``. ``kw`` goes to
    :func:`make_scheduler`."""
    sched = make_scheduler(name, schedule, **kw)
    sched.set_timesteps(num_steps)
    kind = SCHEDULERS[name][1]
    gen = torch.Generator().manual_seed(int(seed))
    x = noise * float(getattr(sched, "init_noise_sigma", 1.0))
    seen: list[torch.Tensor] = []  # the state at the start of every full step, in the flow frame
    evaluations = 0
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
        tt = torch.full((x.shape[0],), float(t))
        first_stage = getattr(sched, "state_in_first_order", True)  # Heun's second evaluation is not a new state
        if kind == "velocity":
            out = model.velocity(x_in, tt / sched.config.num_train_timesteps)
            z = x_in
        else:
            out = model.eps(x_in, tt)
            z = flow.to_flow_coords(x_in, alpha_bar_at(schedule, tt))
        evaluations += 1
        if first_stage:
            seen.append(z)
        step_kw = {"generator": gen} if "generator" in _step_args(sched) else {}
        x = sched.step(out, t, x, **step_kw).prev_sample
    path = torch.stack([*seen, x])
    return RaceRun(name, num_steps, x, path, evaluations, float(straightness(path.flatten(2)).mean()))


def _step_args(sched) -> tuple[str, ...]:
    import inspect

    return tuple(inspect.signature(sched.step).parameters)


def race(
    model: RaceModel,
    schedule: Schedule,
    noise: torch.Tensor,
    names: Sequence[str],
    step_counts: Sequence[int],
    seed: int = 0,
    **kw,
) -> Iterator[RaceRun]:
    """:func:`run_one` for every scheduler and step count (schedulers outer, counts inner), yielding each run as it
    ends, so a page can show progress."""
    for name in names:
        if name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}")
        for n in step_counts:
            yield run_one(name, int(n), model, schedule, noise, seed, **kw)


# --- the two contestants' networks --------------------------------------------------------------------------------


def exact_particle_model(schedule: Schedule, points: torch.Tensor) -> RaceModel:
    """The exact denoiser of ``points`` (N, 2) for both kinds (:mod:`model.particles.exact`)."""
    from model.particles import exact

    return RaceModel(
        eps=lambda x, t: exact.vp_eps_hat(schedule, points, x, t),
        velocity=lambda x, s: exact.exact_velocity(points, x, s),
    )


def eps_network_model(
    schedule: Schedule, eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], clip_sample: bool | None = None
) -> RaceModel:
    """An eps-predicting network ``eps_fn(x_t, t)`` for both kinds: the flow schedulers get its velocity through
    :func:`model.particles.flow.velocity_from_eps` (same network, sampled on the straight-line time), with x0_hat
    clamped to the schedule's ``clip_sample_range`` when ``clip_sample`` (default: the schedule's) is on, as the eps
    schedulers that have the setting clamp it."""
    clip = schedule.clip_sample if clip_sample is None else clip_sample
    clip_range = schedule.clip_sample_range if clip else None
    return RaceModel(eps=eps_fn, velocity=flow.velocity_from_eps(schedule, eps_fn, clip_range=clip_range))
