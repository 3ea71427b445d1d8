"""The eps-predictor: loading and saving a diffusers ``UNet2DModel`` with its schedule.

A checkpoint is a folder in the diffusers layout, config beside the weights:

* flat:     ``config.json`` + ``diffusion_pytorch_model.safetensors`` + ``scheduler_config.json``
* pipeline: ``model_index.json`` + ``unet/`` (config + weights) + ``scheduler/scheduler_config.json``

The bundled model, a local folder and (see :func:`load_model`) a Hub id all load
through the same function. The returned :class:`LoadedModel` is read-only and can be
shared by every session; :meth:`LoadedModel.eps` always returns eps_hat, whatever the
network predicts (epsilon, v_prediction or sample).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from model.reverse import output_to_eps
from model.schedule import Schedule, make_schedule, schedule_from_config

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = REPO_ROOT / "checkpoints" / "photo-unet"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """A UNet in eval mode plus the schedule and conventions it was trained with.

    ``resolution``: the model's native ``sample_size`` in px. ``source``: where it came from.
    """

    unet: torch.nn.Module
    schedule: Schedule
    resolution: int
    source: str

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    @torch.inference_mode()
    def raw(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's own output for x_t (B, 3, H, W) at timesteps t (B,) LongTensor."""
        out = self.unet(x_t, t)
        return out.sample if hasattr(out, "sample") else out

    @torch.inference_mode()
    def eps(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """eps_hat = eps_theta(x_t, t), shaped like x_t; converts v / sample outputs to eps."""
        t = torch.as_tensor(t, dtype=torch.long).reshape(-1)
        if t.numel() == 1 and x_t.shape[0] > 1:
            t = t.expand(x_t.shape[0])
        out = self.raw(x_t, t).float()
        kind = self.schedule.prediction_type
        if kind == "epsilon":
            return out
        eps = torch.empty_like(out)
        for tv in t.unique().tolist():
            m = t == tv
            eps[m] = output_to_eps(self.schedule, out[m], x_t[m], int(tv), kind)
        return eps

    __call__ = eps


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"Could not read {path.name} in {path.parent}: {exc}") from exc


def load_local(folder: str | Path) -> LoadedModel:
    """Load a flat or pipeline-layout folder (see module docstring)."""
    from diffusers import UNet2DModel

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"No model folder at {folder}. Check the path, or pick the bundled model.")
    if (folder / "unet" / "config.json").is_file():
        unet_dir, sched_file = folder / "unet", folder / "scheduler" / "scheduler_config.json"
    elif (folder / "config.json").is_file():
        unet_dir, sched_file = folder, folder / "scheduler_config.json"
    else:
        raise ModelLoadError(
            f"{folder} has no config.json or unet/config.json, so it is not a diffusers UNet2DModel folder."
        )
    cfg = _read_json(unet_dir / "config.json")
    if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ModelLoadError(f"{folder} holds a {cfg.get('_class_name')}, but Diffusion Lens needs a UNet2DModel.")
    if cfg.get("in_channels", 3) != 3 or cfg.get("out_channels", 3) != 3:
        raise ModelLoadError(
            f"{folder} works on {cfg.get('in_channels')}-channel images; Diffusion Lens needs a pixel-space "
            "model with 3 input and 3 output channels (latent models are not supported)."
        )
    schedule = schedule_from_config(_read_json(sched_file)) if sched_file.is_file() else make_schedule("linear")
    try:
        unet = UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=_has_safetensors(unet_dir))
    except Exception as exc:  # diffusers raises many kinds for broken folders
        raise ModelLoadError(f"Could not load the UNet weights from {unet_dir}: {exc}") from exc
    unet.eval().requires_grad_(False)
    size = cfg.get("sample_size", 64)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    return LoadedModel(unet=unet, schedule=schedule, resolution=size, source=str(folder))


def _has_safetensors(folder: Path) -> bool:
    return any(folder.glob("*.safetensors"))


def load_model(source: str | Path | None = None) -> LoadedModel:
    """Load a model from the bundled folder (``None``), a local folder or a Hub id."""
    if source is None:
        source = BUNDLED_MODEL
    path = Path(source)
    if path.exists():
        return load_local(path)
    raise ModelLoadError(f"No model folder at {source}. Check the path, or pick the bundled model.")


def save_model(unet: torch.nn.Module, schedule: Schedule, folder: str | Path) -> Path:
    """Write a flat diffusers folder: config.json, safetensors weights and scheduler_config.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(str(folder), safe_serialization=True)
    (folder / "scheduler_config.json").write_text(json.dumps(schedule.to_scheduler_config(), indent=2) + "\n")
    return folder


def tiny_unet(sample_size: int = 32, seed: int = 0) -> torch.nn.Module:
    """A very small randomly initialised UNet2DModel (for tests and stand-ins)."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ).eval()
