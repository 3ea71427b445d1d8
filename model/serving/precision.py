"""Which arithmetic runs the UNet: fp32, or a faster reduced-precision path that passes a fidelity guard.

The network's forward pass is nearly all of the app's time. On CPUs with native bf16
instructions (AVX-512 BF16 or AMX) it runs much faster under ``torch.autocast`` in bf16,
and on a GPU in bf16 or fp16. The price is rounding. Whether that price is acceptable is
decided per model by measurement, when the model is loaded (:func:`choose`):

1. **Fidelity guard.** A fixed, smooth test image is noised to ``GUARD_TIMESTEPS`` timesteps
   spread over 0 .. T-1 (one batch), and x0_hat is computed by the fp32 path and by the
   candidate. The candidate passes at t when PSNR(x0_hat_candidate, x0_hat_fp32) >=
   ``GUARD_MIN_PSNR_DB`` = 40 dB (images clipped to [-1, 1], peak-to-peak 2). It is used for
   every t up to the last grid timestep before its first failure, and fp32 above (an
   eps-predicting network divides eps_hat by sqrt(alpha_bar_t) to get x0_hat, which magnifies
   rounding at large t; a v-predicting one does not). A candidate that fails at t = 0 is refused.
2. **Speed.** Every candidate that passed, and fp32, is timed on one image of ``TIMING_SIZE``
   px (the app's middle working size: the gain grows with the image); the fastest wins if it
   is at least ``MIN_GAIN`` faster than fp32.
3. **Graph or eager.** Each arithmetic is also tried as a TorchScript graph
   (:mod:`model.serving.graph`, names ending in " graph"): the same ops, run with the GIL released.
   Timed alone, on a quiet machine, a graph is about as fast as eager; beside other sessions'
   Python threads it is many times faster (``bench/gil_convoy.py``), which a quiet timing cannot
   see. So a graph path's time is divided by ``1 + GRAPH_CREDIT`` before the comparison: it beats
   eager of the same arithmetic unless it is more than 25 % slower alone (against another
   arithmetic, ``MIN_GAIN`` applies as above). Above a bf16 / fp16 graph's ``t_max`` the fp32 graph runs.
   ``DIFFUSION_LENS_GRAPH=off`` (``graphs=False``) leaves graphs out.

**Remembered per machine.** Timings are noisy, and a choice that flipped between runs would change
the pictures of the same seed. So the choice is stored (in ``cache``: ``$DIFFUSION_LENS_PRECISION_CACHE``, default
``~/.cache/diffusion-lens/precision``; ``off`` disables it) under a key made of the model's config
and weights, torch's version, the CPU model, the device and the thread count, and reused by every
later load on this machine: same machine, same seed, same pictures, and a faster load.

Policy (the edge sets it, not the math): a :class:`model.serving.service.Serving` object's ``policy``,
``"auto"`` (the app and the figure / generate commands) or ``"fp32"`` (the library default, so that tests and
cross-checks against diffusers see exact fp32); ``DIFFUSION_LENS_PRECISION`` overrides it. Under ``"auto"`` it
calls :func:`apply` on every model it prepares.

Shapes: x (B, C, H, W) float32 on the model's device, t (B,) int64, y (B,) int64 or None.
Pure torch; nothing here imports streamlit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.serving.settings import POLICIES

GUARD_MIN_PSNR_DB = 40.0
GUARD_TIMESTEPS = 16
GUARD_MAX_SIZE = 64  # px: the guard runs at the model's native size, at most this (16 images in one batch)
TIMING_SIZE = 128  # px: candidates are timed on one image of this size (the app's middle working size)
MIN_GAIN = 0.05  # a candidate must save at least 5 % of fp32's time to be worth its rounding
GRAPH_CREDIT = 0.25  # a graph path may be up to 25 % slower alone: it frees the GIL for other sessions


@dataclass(frozen=True)
class PrecisionPath:
    """One way to run the network: plain fp32 (``dtype`` None) or autocast to ``dtype`` on ``device_type``;
    eager, or as a TorchScript graph (``graph``: :mod:`model.serving.graph`)."""

    name: str
    device_type: str = "cpu"
    dtype: torch.dtype | None = None
    graph: bool = False

    def context(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def forward(self, call: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run ``call`` (one forward pass of the network) on this path and return its output."""
        with self.context():
            return call()


FP32 = PrecisionPath("fp32")
FP32_GRAPH = PrecisionPath("fp32 graph", graph=True)


def as_graph(path: PrecisionPath) -> PrecisionPath:
    """``path``'s arithmetic run as a TorchScript graph (named "<name> graph")."""
    return path if path.graph else dataclasses.replace(path, name=f"{path.name} graph", graph=True)


def as_eager(path: PrecisionPath) -> PrecisionPath:
    """``path``'s arithmetic run eagerly (the inverse of :func:`as_graph`)."""
    return dataclasses.replace(path, name=path.name.removesuffix(" graph"), graph=False) if path.graph else path


def candidates(device: str | torch.device, graphs: bool = True) -> list[PrecisionPath]:
    """Paths worth trying on ``device`` besides eager fp32 (the reference): reduced precision, and (``graphs``)
    each arithmetic as a graph."""
    dev = torch.device(device)
    if dev.type == "cuda":
        out = [PrecisionPath("fp16", "cuda", torch.float16)]
        if torch.cuda.is_bf16_supported():
            out.insert(0, PrecisionPath("bf16", "cuda", torch.bfloat16))
    elif dev.type == "cpu":
        out = [PrecisionPath("bf16", "cpu", torch.bfloat16)]
    else:
        return []
    if graphs:
        out += [dataclasses.replace(FP32_GRAPH, device_type=dev.type), *(as_graph(p) for p in out)]
    return out


@dataclass(frozen=True)
class PrecisionChoice:
    """The path a model runs: ``path`` for timesteps up to ``t_max`` (None: every t), fp32 above.

    ``trials`` keeps what was measured, per candidate name: ``ms`` (median forward pass,
    batch 1, ``TIMING_SIZE`` px), ``min_psnr_db`` and ``psnr_db`` per guard timestep, ``passed_to``.
    """

    path: PrecisionPath = FP32
    t_max: int | None = None
    reason: str = "fp32 (the library default)"
    trials: dict = field(default_factory=dict, compare=False)

    def path_for(self, t: torch.Tensor) -> PrecisionPath:
        """The path for a batch with timesteps ``t`` (B,): the reduced one only if every row is within range."""
        if self.t_max is None or int(t.max()) <= self.t_max:
            return self.path
        if self.path.graph and self.path.dtype is not None:  # a reduced-precision graph: fp32 graph above
            return dataclasses.replace(FP32_GRAPH, device_type=self.path.device_type)
        return FP32

    @property
    def label(self) -> str:
        """One line for the sidebar, e.g. ``bf16 autocast, graph (2.3x faster) for t <= 437, fp32 above``."""
        if self.path.dtype is None and not self.path.graph:
            return self.reason
        trial = self.trials.get(self.path.name, {})
        fp32_ms, ms = self.trials.get("fp32", {}).get("ms"), trial.get("ms")
        speed = f" ({fp32_ms / ms:.1f}x faster)" if fp32_ms and ms else ""
        where = "" if self.t_max is None else f" for t <= {self.t_max}, fp32 above"
        arithmetic = "fp32" if self.path.dtype is None else f"{self.path.name.split()[0]} autocast"
        engine = ", graph" if self.path.graph else ""
        return f"{arithmetic}{engine}{speed}{where}"


def guard_image(channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """A fixed smooth test image (1, C, size, size) in [-1, 1]: 6x6 random colours, bilinearly enlarged."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, channels, 6, 6, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def psnr_db(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """PSNR (B,) in dB of (B, C, H, W) images clipped to [-1, 1], peak-to-peak 2 (inf where identical)."""
    err = (x.clamp(-1, 1).double() - ref.clamp(-1, 1).double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / err)


def guard(
    predict_x0: Callable[[PrecisionPath, torch.Tensor, torch.Tensor], torch.Tensor],
    x_t: torch.Tensor,
    t: torch.Tensor,
    path: PrecisionPath,
    reference: torch.Tensor,
    min_psnr_db: float = GUARD_MIN_PSNR_DB,
) -> tuple[int | None, list[float]]:
    """(t_max, PSNR per t) of ``path`` against the fp32 ``reference`` x0_hat (B, C, H, W) at ``t`` (B,), ascending.

    ``t_max``: the largest t such that every guard t up to it passes; None if the first fails
    (the path is refused), ``int(t[-1])`` if all pass.
    """
    scores = [float(v) for v in psnr_db(predict_x0(path, x_t, t), reference)]
    t_max = None
    for tv, score in zip(t.tolist(), scores, strict=True):
        if score < min_psnr_db:
            break
        t_max = int(tv)
    return t_max, scores


def _time_ms(run: Callable[[], object], repeats: int = 3) -> float:
    run()  # warm-up: oneDNN builds its kernels for this shape and dtype
    run()  # a graph's second call is still TorchScript's profiling run
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def choose(
    model, paths: Sequence[PrecisionPath] | None = None, min_psnr_db: float = GUARD_MIN_PSNR_DB, graphs: bool = True
):
    """The fastest path for ``model`` (a :class:`model.nets.network.LoadedModel`) that passes the guard.

    ``paths``: candidates to try (default :func:`candidates` for the model's device, with graphs if ``graphs``); a
    test can inject a deliberately lossy one. Returns a :class:`PrecisionChoice`.
    """
    paths = list(candidates(model.device, graphs) if paths is None else paths)
    if not paths:
        return PrecisionChoice(reason=f"fp32 (no reduced-precision path on {model.device})")
    T = int(model.schedule.T)
    size = min(int(model.resolution), GUARD_MAX_SIZE)
    t = torch.linspace(0, T - 1, GUARD_TIMESTEPS).round().long()
    x0 = guard_image(model.channels, size)
    eps = torch.randn(len(t), model.channels, size, size, generator=torch.Generator().manual_seed(1))
    ab = model.schedule.alpha_bar[t].float().view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # q(x_t | x_0), eq. 4

    def predict_x0(path: PrecisionPath, x: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
        fixed = dataclasses.replace(model, precision=PrecisionChoice(path=path, reason=path.name))
        return fixed.predict(x, tt)[1]

    reference = predict_x0(FP32, x_t, t)
    one_x = torch.randn(1, model.channels, TIMING_SIZE, TIMING_SIZE, generator=torch.Generator().manual_seed(2))
    one_t = t[len(t) // 2 :][:1]
    trials: dict[str, dict] = {"fp32": {"ms": _time_ms(lambda: predict_x0(FP32, one_x, one_t))}}
    best, best_t_max = FP32, None
    by_name = {p.name: p for p in paths}

    def score(name: str) -> float:  # the time that is compared: a graph's is credited for freeing the GIL
        ms = trials[name]["ms"]
        return ms / (1 + GRAPH_CREDIT) if name != "fp32" and by_name[name].graph else ms

    for path in paths:
        t_max, scores = guard(predict_x0, x_t, t, path, reference, min_psnr_db)
        trial = {"min_psnr_db": min(scores), "psnr_db": dict(zip(t.tolist(), scores, strict=True)), "passed_to": t_max}
        trials[path.name] = trial
        if t_max is None:
            trial["refused"] = f"x0_hat PSNR {scores[0]:.1f} dB < {min_psnr_db:g} dB at t = 0"
            continue
        trial["ms"] = _time_ms(lambda p=path: predict_x0(p, one_x, one_t))
        gain = 0.0 if path.dtype == best.dtype else MIN_GAIN  # MIN_GAIN pays for rounding; same arithmetic: none
        if score(path.name) < (1 - gain) * score(best.name):
            best, best_t_max = path, (None if t_max >= T - 1 else t_max)
    if best is FP32:
        refused = [n for n, tr in trials.items() if "refused" in tr]
        why = "failed the fidelity guard" if refused and len(refused) == len(paths) else "was not faster"
        return PrecisionChoice(reason=f"fp32 ({', '.join(p.name for p in paths)} {why})", trials=trials)
    return PrecisionChoice(path=best, t_max=best_t_max, reason=f"{best.name} passed the guard", trials=trials)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(model, graphs: bool = True) -> str:
    """A hex key for (this model's config and weights, the schedule, torch, the CPU, device, threads)."""
    h = hashlib.sha256()
    config = dict(getattr(model.unet, "config", {}) or {})
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    with torch.no_grad():  # a weights fingerprint: the float64 sum of every parameter
        h.update(repr(sum(float(p.detach().double().sum()) for p in model.unet.parameters())).encode())
    sched = model.schedule
    h.update(f"{sched.name}|{sched.prediction_type}|{sched.T}|{float(sched.alpha_bar[-1])!r}".encode())
    h.update(f"{torch.__version__}|{_cpu_name()}|{model.device}|{torch.get_num_threads()}".encode())
    h.update(f"candidates v2|{[p.name for p in candidates(model.device, graphs)]}".encode())  # graphs on or off
    return h.hexdigest()[:32]


def _load_choice(file: Path, device: str, graphs: bool) -> PrecisionChoice | None:
    try:
        data = json.loads(file.read_text())
        by_name = {p.name: p for p in [FP32, FP32_GRAPH, *candidates(device, graphs)]}
        return PrecisionChoice(
            path=by_name[data["path"]], t_max=data["t_max"], reason=data["reason"], trials=data["trials"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, unreadable or from another version: measure again


def _save_choice(file: Path, choice: PrecisionChoice) -> None:
    data = {"path": choice.path.name, "t_max": choice.t_max, "reason": choice.reason, "trials": choice.trials}
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        tmp.replace(file)
    except OSError:
        pass  # a read-only home: the choice is simply measured again next time


def apply(model, cache: Path | None, graphs: bool = True):
    """``model`` with :func:`choose`'s path (with graph paths if ``graphs``), remembered in the folder ``cache`` per
    machine (see the module docstring; None: measured at every load) and reused when the key matches."""
    file = cache / f"{machine_key(model, graphs)}.json" if cache is not None else None
    choice = _load_choice(file, model.device, graphs) if file is not None else None
    if choice is None:
        choice = choose(model, graphs=graphs)
        if file is not None:
            _save_choice(file, choice)
    return dataclasses.replace(model, precision=choice)


__all__ = [
    "FP32",
    "FP32_GRAPH",
    "GRAPH_CREDIT",
    "GUARD_MIN_PSNR_DB",
    "POLICIES",
    "PrecisionChoice",
    "PrecisionPath",
    "apply",
    "as_eager",
    "as_graph",
    "candidates",
    "choose",
    "guard",
    "guard_image",
    "machine_key",
    "psnr_db",
]
