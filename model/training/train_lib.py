"""The building blocks of ``python -m model.cli.train``: UNet presets, the loss weighting over t,
the timestep sampler, the learning-rate schedule, the EMA of the weights, the checkpoint writer,
and a run's saved state (:class:`RunState`) and loss log (:class:`LossLog`).

Pure torch (diffusers and accelerate are imported where they are used); the I/O is
:func:`save_checkpoint`, :class:`RunState` and :class:`LossLog`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch

from model.training.fashion import CLASSES, NULL_LABEL

# Architecture presets. "photo-wide" is the shipped model: "photo" with its full-resolution
# level widened to 32 channels by ``python -m model.cli.widen`` after 87 min of training (the
# time embedding keeps photo's width, 64). "tiny" is for tests.
ARCHS = {
    "tiny": dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attn=False),
    "small": dict(block_out_channels=(32, 64, 128, 128), layers_per_block=1, norm_num_groups=32, attn=False),
    "photo": dict(block_out_channels=(16, 32, 64, 128, 192), layers_per_block=1, norm_num_groups=8, attn=False),
    "photo-wide": dict(
        block_out_channels=(32, 32, 64, 128, 192),
        layers_per_block=1,
        norm_num_groups=8,
        attn=False,
        time_embedding_dim=64,
    ),
    # the class-conditional Fashion-MNIST generator: 1 channel at 32 px, self-attention at 8 px,
    # 10 classes + the "no label" index (model.training.fashion.NULL_LABEL) for classifier-free guidance
    "fashion": dict(
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        norm_num_groups=8,
        attn=True,
        channels=1,
        num_class_embeds=11,
    ),
    "tiny-cond": dict(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attn=True, channels=1, num_class_embeds=11
    ),
}


def build_unet(arch: str = "photo", sample_size: int = 64):
    """A ``UNet2DModel`` from a preset name: 3 in / 3 out channels unless the preset says ``channels``;
    class-conditional (a label embedding added to the time embedding) when it sets ``num_class_embeds``."""
    from diffusers import UNet2DModel

    a = dict(ARCHS[arch])
    attn = a.pop("attn")
    channels = a.pop("channels", 3)
    n = len(a["block_out_channels"])
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if attn:  # self-attention at the lowest resolution only
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        attention_head_dim=min(32, a["block_out_channels"][-1]) if attn else None,
        **a,
    )


def loss_weight(spec: str, snr_t: torch.Tensor) -> torch.Tensor:
    """Per-sample weight on the ε-MSE (see module docstring). ``snr_t`` has shape (B,)."""
    inv = 1.0 / snr_t
    if spec == "eps":
        return torch.ones_like(snr_t)
    if spec == "v":
        return 1.0 + inv
    if spec.startswith("trunc:"):
        return 1.0 + inv.clamp(max=float(spec.split(":", 1)[1]))
    raise ValueError(f"unknown --loss-weight {spec!r}")


class EMA:
    """Exponential moving average of a model's parameters (and a copy of its buffers)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        shadow, live = [], []
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                shadow.append(self.shadow[k])
                live.append(v.detach().float())
            else:
                self.shadow[k].copy_(v)
        # one fused update for all float tensors (a per-tensor loop is ~600 kernel launches a step on a GPU)
        torch._foreach_lerp_(shadow, live, 1 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, sd: dict) -> None:
        self.decay, self.num_updates = sd["decay"], sd["num_updates"]
        # keep each shadow tensor on the device of the live one (the state may be loaded with map_location="cpu")
        self.shadow = {k: v.to(self.shadow[k].device).clone() for k, v in sd["shadow"].items()}


def save_checkpoint(out: Path, unet_config: dict, ema: EMA, sched, dtype: str = "float16") -> None:
    """Write the diffusers folder of the EMA weights, stored as ``dtype`` to keep the folder small, with
    :func:`model.nets.checkpoint_io.save_model`. Load it with :func:`model.nets.network.load_model` (or
    ``UNet2DModel.from_pretrained(out, torch_dtype=torch.float32)``)."""
    from diffusers import UNet2DModel

    from model.nets.checkpoint_io import save_model

    m = UNet2DModel.from_config(unet_config)
    m.load_state_dict({k: v.to(torch.float32) for k, v in ema.shadow.items()})
    save_model(m.to(getattr(torch, dtype)), sched, out)


def parse_t_focus(spec: str) -> tuple[float, int]:
    """``"P:TMAX"`` -> (P, TMAX), checked once when the arguments are parsed."""
    try:
        p_str, tmax_str = spec.split(":", 1)
        p, tmax = float(p_str), int(tmax_str)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--t-focus wants P:TMAX, e.g. 0.5:450, got {spec!r}") from None
    if not (0.0 <= p <= 1.0 and tmax >= 1):
        raise argparse.ArgumentTypeError(f"--t-focus wants 0 <= P <= 1 and TMAX >= 1, got {spec!r}")
    return p, tmax


def sample_t(n: int, T: int, focus: tuple[float, int] | None, generator=None, device=None) -> torch.Tensor:
    """Training timesteps, shape (n,), int64 in [0, T).

    ``focus=None`` is uniform over all T. ``focus=(P, TMAX)`` (see :func:`parse_t_focus`)
    draws each t from ``[0, TMAX)`` with probability P and uniformly from ``[0, T)``
    otherwise, so the low-noise steps (where a denoiser's fine detail is won or lost) get
    more of the gradient budget. Nothing is reweighted: this *is* a weighting over t.
    """
    t = torch.randint(0, T, (n,), generator=generator, device=device)
    if focus is None:
        return t
    p, tmax = focus
    if tmax > T:
        raise ValueError(f"--t-focus TMAX must be at most T = {T}, got {tmax}")
    low = torch.randint(0, tmax, (n,), generator=generator, device=device)
    pick = torch.rand(n, generator=generator, device=device) < p
    return torch.where(pick, low, t)


def lr_at(a, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / max(1, a.warmup))
    if a.lr_decay == "constant":
        return a.lr * warm
    return a.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclasses.dataclass
class RunState:
    """What a ``python -m model.cli.train`` run carries from step to step, and how it is saved and resumed:
    the accelerate state, the EMA, the step count and each process's sampler RNG in ``OUT/train_state/``,
    and the diffusers folder of the EMA weights in ``OUT``."""

    a: argparse.Namespace
    acc: object  # accelerate.Accelerator
    out: Path
    unet_config: dict
    ema: EMA
    sched: object  # model.schedule.Schedule
    sampler: object
    n_params: int
    conditional: bool
    step: int = 0
    elapsed_before: float = 0.0  # training seconds of earlier sessions of this run
    t_start: float = dataclasses.field(default_factory=time.time)
    last_save: float = dataclasses.field(default_factory=time.time)

    @property
    def state_dir(self) -> Path:
        return self.out / "train_state"

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.t_start

    def resume(self) -> None:
        """Load the accelerate state, the EMA, the step count and every sampler's RNG from ``train_state/``."""
        a, acc = self.a, self.acc
        acc.load_state(str(self.state_dir / "accelerate"))
        # extra.pt holds only tensors, numbers and dicts: no pickled code is needed to read it
        extra = torch.load(self.state_dir / "extra.pt", map_location="cpu", weights_only=True)
        self.step, self.elapsed_before = extra["step"], extra["elapsed_s"]
        self.ema.load_state_dict(extra["ema"])
        if acc.process_index < len(extra["sampler_rng"]):
            self.sampler.g.set_state(extra["sampler_rng"][acc.process_index])
        else:  # resumed with more processes than were saved: give the new ones their own stream
            self.sampler.g.manual_seed(a.seed * 1000 + acc.process_index + 7919 * self.step)
        acc.print(f"resumed from {self.state_dir} at step {self.step} ({self.elapsed_before / 60:.1f} min trained)")

    def write_run_files(self, n_images: int, labelled: bool) -> None:
        """unet_config.json and run.json in ``train_state/``, and the one-line summary (main process only)."""
        a, acc = self.a, self.acc
        if not acc.is_main_process:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "unet_config.json").write_text(json.dumps(self.unet_config, indent=2, default=list))
        run = {
            **{k: str(v) for k, v in vars(a).items()},
            "prediction": a.prediction,
            "params": self.n_params,
            "num_processes": acc.num_processes,
            "device": str(acc.device),
        }
        (self.state_dir / "run.json").write_text(json.dumps(run, indent=2))
        acc.print(
            f"UNet2DModel {self.n_params / 1e6:.2f}M params, {a.prediction}, loss weight {a.loss_weight}, "
            f"{n_images} {'labelled images' if labelled else 'photos'}, res {a.res}, batch {a.batch} x {acc.num_processes}"
            + (f", label dropout {a.label_dropout}" if self.conditional else "")
        )

    def clock(self) -> tuple[float, float]:
        """(training time so far, seconds since the last save), both as seen by the main process.

        With several processes every rank must take the same decisions (stop, save, LR) at the same
        step, or their collectives mismatch and the run deadlocks: rank 0's clock is broadcast."""
        now = torch.tensor([self.elapsed(), time.time() - self.last_save], dtype=torch.float64)
        if self.acc.num_processes > 1:
            from accelerate.utils import broadcast

            now = broadcast(now.to(self.acc.device), from_process=0).cpu()
        return float(now[0]), float(now[1])

    def save(self) -> None:
        """The resumable state (every process takes part) and the diffusers folder (main process)."""
        a, acc = self.a, self.acc
        acc.wait_for_everyone()
        # every process sends its sampler RNG state to the main one
        sampler_states = [self.sampler.g.get_state()]
        if acc.num_processes > 1:
            from accelerate.utils import gather_object

            sampler_states = gather_object(sampler_states)
        acc.save_state(str(self.state_dir / "accelerate"))
        if acc.is_main_process:
            extra = {"step": self.step, "elapsed_s": self.elapsed(), "ema": self.ema.state_dict()}
            torch.save({**extra, "sampler_rng": sampler_states}, self.state_dir / "extra.pt.tmp")
            os.replace(self.state_dir / "extra.pt.tmp", self.state_dir / "extra.pt")
            save_checkpoint(self.out, self.unet_config, self.ema, self.sched, a.save_dtype)
            if self.conditional:  # the class names travel with the weights
                (self.out / "classes.json").write_text(
                    json.dumps({"names": list(CLASSES), "null_label": NULL_LABEL}, indent=2) + "\n"
                )
            meta = {
                "step": self.step,
                "elapsed_min": round(self.elapsed() / 60, 2),
                "params": self.n_params,
                "loss_weight": a.loss_weight,
                "prediction": a.prediction,
                "res": a.res,
                "batch": a.batch * acc.num_processes,
                "lr": a.lr,
                "device": str(acc.device),
                "num_processes": acc.num_processes,
            }
            (self.state_dir / "last_save.json").write_text(json.dumps(meta, indent=2))
        acc.wait_for_everyone()


class LossLog:
    """Running means of the loss and eps-MSE, shown on the bar and appended to ``train_state/loss.csv``
    every 25 steps (read back only then: a ``.item()`` per step stalls a GPU)."""

    EVERY = 25

    def __init__(self, path: Path, main_process: bool):
        new = not path.exists()
        self.file = open(path, "a", newline="") if main_process else None  # noqa: SIM115 -- closed by close()
        self.writer = csv.writer(self.file) if self.file else None
        if self.writer and new:
            self.writer.writerow(["step", "elapsed_min", "lr", "loss", "eps_mse", "res"])
        self.loss, self.eps, self.n = 0.0, 0.0, 0

    def add(self, run: RunState, bar, loss: torch.Tensor, per: torch.Tensor, lr: float, res: int) -> None:
        self.loss += loss.detach()
        self.eps += per.detach().mean()
        self.n += 1
        bar.update(1)
        if run.step % self.EVERY:
            return
        loss_mean, eps_mean = float(self.loss) / self.n, float(self.eps) / self.n
        bar.set_postfix(loss=f"{loss_mean:.4f}", eps=f"{eps_mean:.4f}", lr=f"{lr:.1e}", res=run.a.res)
        if self.writer:
            row = [run.step, f"{run.elapsed() / 60:.2f}", f"{lr:.3e}", f"{loss_mean:.5f}", f"{eps_mean:.5f}", res]
            self.writer.writerow(row)
            self.file.flush()
        self.loss, self.eps, self.n = 0.0, 0.0, 0

    def close(self) -> None:
        if self.file:
            self.file.close()
