"""What a piece of work costs before it runs: MACs counted exactly, seconds measured.

The app quotes a time before every long run ("Compute all 1000 terms (about 12 s)", "50 steps ×
19 ms per step ≈ 1.0 s", the sidebar's seconds per step). Each quote is

    seconds = sum over the network passes of  forward_s(batch, path)   +   the loop's own work

* ``forward_s`` is **measured**, not extrapolated: one forward pass of *this* model at *this*
  resolution and batch, through :meth:`LoadedModel.eps` itself, so it follows whatever
  arithmetic the model runs (fp32, or the reduced-precision path chosen at load time, which may
  differ by t: see :func:`path_name`). :func:`time_call` takes the median of warm calls and
  never counts a cold first call (the first pass of a new shape pays allocator and kernel
  set-up) unless one call is already long enough to stand alone.
* the loop's own work (the sampler's update, recording x_t / eps_hat / x0_hat, PSNR, the bound's
  Gaussian terms) is measured by running the same loop with a free network that answers zeros
  (:func:`trajectory_overhead`, :func:`terms_overhead`).
* the number of passes and their batches come from the plan of the work itself
  (:func:`trajectory_passes`, :func:`terms_passes`).

Memoising the measurements is the caller's job (the app keeps them in ``app/compute/estimates.py``),
so this module stays pure: no Streamlit or Plotly, nothing stored on the model.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from model.diffusion.schedule import Schedule


class LoadedModel(Protocol):
    """What a cost needs of a model (a :class:`model.nets.network.LoadedModel`, one layer above this one)."""

    channels: int
    device: str
    precision: Any  # its PrecisionChoice, or None
    serving: Any  # the Serving object that runs it, or None

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, class_labels: Any = None) -> torch.Tensor: ...


# A first call this long is its own measurement: its one-off set-up (about a second for a 256-px Hub-sized
# pass, whose warm calls take 3-4 s on 2 cores) is then a tenth of it at most. Also the measuring budget:
# no further call is started that would take a measurement past it.
SLOW_CALL_S = 10.0
MIN_TOTAL_S = 0.2  # cheap calls are repeated until the warm ones add up to this
MIN_WARM = 2  # warm calls timed at least (their median is the measurement), within SLOW_CALL_S of measuring
OVERHEAD_STEPS = 8  # steps of the free-network loop timed for the per-step overhead


def duration(seconds: float) -> str:
    """E.g. 'under a second', 'about 12 s', 'about 8 min'."""
    if seconds < 1:
        return "under a second"
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.0f} min"


@dataclass(frozen=True)
class Estimate:
    """What a planned piece of work will take: ``passes`` network passes plus the loop's own work.

    ``forward_s``: the passes' summed measured time; ``overhead_s``: the loop's, both in seconds.
    """

    passes: int
    forward_s: float
    overhead_s: float

    @property
    def seconds(self) -> float:
        return self.forward_s + self.overhead_s

    def per_pass(self) -> float:
        """Seconds per network pass, the loop's share included (the sidebar's "s per step")."""
        return self.seconds / max(self.passes, 1)

    def text(self) -> str:
        """E.g. 'about 12 s' (see :func:`duration`)."""
        return duration(self.seconds)


def count_macs(unet: torch.nn.Module, resolution: int, batch: int = 1, in_channels: int | None = None) -> int:
    """MACs of one forward pass of ``unet`` at ``resolution`` px (FLOPs / 2, per FlopCounterMode).

    A diffusers model is rebuilt from its config on the ``meta`` device, so nothing is
    computed and no memory is used; any other module runs one real forward on zeros.
    Counts convolutions, matmuls and attention (elementwise ops and norms are not counted).
    """
    from torch.utils.flop_counter import FlopCounterMode

    net, dev = unet, next(iter(unet.parameters()), torch.empty(0)).device
    config = getattr(unet, "config", None)
    if config is not None and hasattr(type(unet), "from_config"):
        with torch.device("meta"):
            net, dev = type(unet).from_config(config), torch.device("meta")
    in_channels = in_channels or int(getattr(config, "in_channels", 3))
    x = torch.zeros(batch, in_channels, resolution, resolution, device=dev)
    t = torch.full((batch,), 10, dtype=torch.long, device=dev)
    kw = (
        {"class_labels": torch.zeros(batch, dtype=torch.long, device=dev)}
        if getattr(config, "num_class_embeds", None)
        else {}
    )
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, t, **kw)
    return int(counter.get_total_flops() // 2)


def time_call(
    call: Callable[[], object], slow_s: float = SLOW_CALL_S, min_total_s: float = MIN_TOTAL_S, min_warm: int = MIN_WARM
) -> float:
    """Seconds one ``call()`` takes once warm: the median of warm calls.

    The first call of a new shape may pay one-off set-up (first touch of its memory, kernel
    choice; a 256-px Hub-sized pass at batch 1 took a fifth to a third more CPU time the first
    time, enough to take it past 5 s), so it is a warm-up and never part of the result, unless
    it took ``slow_s`` or more: then it is used as is (its set-up is a small share of it; a
    256-px Hub-sized pass at batch 3 is timed once).

    After it, warm calls are timed until there are ``min_warm`` and they add up to
    ``min_total_s`` (a cheap pass is timed many times, so one hiccup does not decide), but no
    call is started that would take the whole measurement past ``slow_s`` once there is a warm
    one: that bounds what the first visitor of a page waits for a quote.
    """

    def once() -> float:
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    first = once()
    if first >= slow_s:
        return first
    warm = [once()]
    spent = first + warm[0]
    while len(warm) < 100 and (len(warm) < min_warm or sum(warm) < min_total_s):
        if spent + statistics.median(warm) > slow_s:  # the next call would pass the budget
            break
        warm.append(once())
        spent += warm[-1]
    return statistics.median(warm)


def path_name(model: LoadedModel, t: int) -> str:
    """The name of the arithmetic ``model`` runs at timestep ``t`` ("fp32" unless the model chose a faster path).

    A reduced-precision path may be used only up to some t (``model.serving.precision.path_for``), so a
    pass's cost depends on its timesteps; estimates group passes by this name.
    """
    choice = getattr(model, "precision", None)
    if choice is None or not hasattr(choice, "path_for"):
        return "fp32"
    return str(choice.path_for(torch.tensor([int(t)])).name)


def time_forward(model: LoadedModel, resolution: int, batch: int, t: int) -> float:
    """Seconds of one :meth:`LoadedModel.eps` pass on a (batch, C, resolution, resolution) input at timestep t.

    Goes through the model's own call (padding, the precision path), so it measures what a page's pass
    costs. The inference slot is taken before the clock starts (it is re-entrant), so time spent queueing
    behind other sessions' passes is not counted as this model's.
    """
    import contextlib

    x = torch.zeros(batch, model.channels, resolution, resolution)
    tt = torch.full((batch,), int(t), dtype=torch.long)

    def call() -> None:
        model.eps(x, tt)
        if str(model.device).startswith("cuda"):
            torch.cuda.synchronize()

    serving = getattr(model, "serving", None)  # the model's server's queue, if it has one
    with serving.queue.slot() if serving is not None else contextlib.nullcontext():
        return time_call(call)


def _zeros_eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A free network: eps_hat = 0 (times the loop around the network, not the network)."""
    return torch.zeros_like(x_t)


def _zeros_prediction(x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A free network for a sampler: (eps_hat, x0_hat) = (0, 0), the pair that a step takes whatever the schedule's
    prediction type (eps_hat alone is refused for v- and sample-predicting ones)."""
    zeros = torch.zeros_like(x_t)
    return zeros, zeros


def trajectory_overhead(
    schedule: Schedule, channels: int, resolution: int, sampler: str = "ddim", record: bool = True
) -> float:
    """Seconds per step of a reverse trajectory's own work: the sampler's update (and, with
    ``record``, :func:`model.images.figure.record_run` keeping x_t, eps_hat, x0_hat and PSNR), at batch 1."""
    from model.diffusion.trajectory import make_timesteps, sample_trajectory
    from model.images import figure

    x0 = torch.zeros(1, channels, resolution, resolution)
    ts = make_timesteps(schedule.T - 1, OVERHEAD_STEPS)

    def call() -> None:
        x_start, g = figure.start_sample(schedule, x0, ts[0], 0)
        records = sample_trajectory(_zeros_prediction, schedule, x_start, ts, sampler, 0.0, g)
        if record:
            figure.record_run(records, x0)
        else:
            for _ in records:
                pass

    return time_call(call) / len(ts)


def terms_overhead(schedule: Schedule, channels: int, resolution: int, batch: int) -> float:
    """Seconds per batch of the bound's own work in :func:`model.diffusion.likelihood.vb_terms` (noise draws,
    q_sample, the Gaussian terms in float64) for ``batch`` timesteps."""
    from model.diffusion import likelihood as lk

    x0 = torch.zeros(1, channels, resolution, resolution)
    ts = list(range(schedule.T - 1, -1, -1))[:batch]
    gen = torch.Generator().manual_seed(0)
    return time_call(lambda: lk.vb_terms(_zeros_eps, schedule, x0, ts, generator=gen, batch_size=batch))


def trajectory_passes(timesteps: Sequence[int], batch: int = 1) -> Counter:
    """The network passes of a trajectory over ``timesteps``: Counter{(batch, t): count}, one pass per step
    (``batch`` 2 for classifier-free guidance: conditional and unconditional in one doubled batch)."""
    return Counter((int(batch), int(t)) for t in timesteps)


def terms_passes(T: int, batch_size: int, timesteps: Sequence[int] | None = None) -> Counter:
    """The network passes of :func:`model.diffusion.likelihood.vb_terms` over ``timesteps`` (default all of T-1 .. 0) in
    chunks of ``batch_size``: Counter{(chunk size, largest t of the chunk): count}."""
    ts = list(range(T - 1, -1, -1)) if timesteps is None else [int(t) for t in timesteps]
    return Counter((len(ts[i : i + batch_size]), max(ts[i : i + batch_size])) for i in range(0, len(ts), batch_size))


def estimate(
    model: LoadedModel,
    passes: Counter,
    overhead_s: float,
    forward_s: Callable[[int, int], float],
) -> Estimate:
    """Add up a plan: ``forward_s(batch, t)`` for every pass in ``passes`` plus ``overhead_s``.

    ``forward_s`` is asked once per arithmetic path (see :func:`path_name`), at that path's
    largest batch: passes whose timesteps run on the same path share one measurement, and a
    smaller chunk (the remainder of a bound's chunks) is costed pro rata.
    """
    plan = [(batch, t, count, path_name(model, t)) for (batch, t), count in passes.items()]
    full: dict[str, tuple[int, int]] = {}  # path -> (its largest batch, a timestep on it)
    for batch, t, _, name in plan:
        if batch > full.get(name, (0, 0))[0]:
            full[name] = (batch, t)
    measured: dict[str, float] = {name: forward_s(batch, t) for name, (batch, t) in full.items()}
    total = sum(count * measured[name] * batch / full[name][0] for batch, _, count, name in plan)
    return Estimate(sum(passes.values()), total, overhead_s)


def suggested_steps(seconds_per_step: float, budget_s: float = 20.0, full: int = 50, minimum: int = 10) -> int:
    """How many sampling steps fit in ``budget_s``: ``full`` when cheap, down to ``minimum`` for 256-px models on a CPU."""
    if seconds_per_step <= 0:
        return full
    return int(max(minimum, min(full, budget_s // seconds_per_step)))
