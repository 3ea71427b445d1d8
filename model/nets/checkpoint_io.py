"""Reading and writing one model folder in the diffusers layout: configs, weights, the UNet.

* flat:     ``config.json`` + ``diffusion_pytorch_model.safetensors`` + ``scheduler_config.json``
* pipeline: ``model_index.json`` + ``unet/`` (config + weights) + ``scheduler/scheduler_config.json``

Checks that a folder holds a pixel-space RGB or grey ``UNet2DModel``, unconditional or class-conditional
through ``num_class_embeds`` (JSON only, so a
Hub repo can be checked before its weights arrive), refuses oversized models, and builds the
UNet with its weights checked strictly. :func:`model.nets.network.load_local` turns the result into
a :class:`model.nets.network.LoadedModel`; :func:`save_model` and :func:`tiny_unet` write and make
folders for tests and training.

Safety: weights are read from ``*.safetensors`` where they exist. A pickled ``.bin`` is
read only with ``torch.load(weights_only=True)``, which refuses any pickle that would
build objects other than tensors (so a booby-trapped file raises instead of running).
The UNet is built from its ``config.json`` by diffusers' own ``UNet2DModel`` class; code
in a repository is never imported or run (no ``trust_remote_code``, no custom pipelines).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from model.diffusion.schedule import Schedule

WEIGHTS_SAFE = "diffusion_pytorch_model.safetensors"
WEIGHTS_PICKLE = "diffusion_pytorch_model.bin"
MAX_PARAMETERS = 400_000_000  # 1.6 GB in float32; the Google 256-px DDPMs have 113.7M


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what was wrong and what to do.

    ``reason`` says only what was wrong (by default the whole message), for a caller that gives its own advice:
    the app falls back to the bundled model and must not suggest a local folder on a server that loads none.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


# ---------------------------------------------------------------------------------
# Reading a folder (flat or pipeline layout)
# ---------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"Could not read {path.name} in {path.parent} ({exc}); re-save or re-download it."
        ) from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} is not a JSON object; re-save or re-download the model.")
    return data


@dataclass(frozen=True)
class _Layout:
    unet_dir: Path
    scheduler_file: Path
    config: dict  # the UNet's config.json


_LATENT_PARTS = ("vae", "vqvae", "text_encoder", "tokenizer", "image_encoder", "transformer")


def _inspect_folder(folder: Path, name: str) -> _Layout:
    """Find the UNet and scheduler configs and check that this is a pixel-space RGB UNet2DModel.

    Reads JSON only, so a Hub repo can be checked before its weights are downloaded.
    """
    index = folder / "model_index.json"
    if index.is_file():
        parts = [k for k in _read_json(index) if not k.startswith("_")]
        extra = [p for p in parts if p in _LATENT_PARTS]
        if extra:
            raise ModelLoadError(
                f"{name} is a latent or text-conditional pipeline (it has {', '.join(extra)}); Diffusion Lens "
                "needs an unconditional pixel-space UNet2DModel such as google/ddpm-cifar10-32."
            )
    if (folder / "unet" / "config.json").is_file():
        unet_dir, sched = folder / "unet", folder / "scheduler" / "scheduler_config.json"
    elif (folder / "config.json").is_file():
        unet_dir, sched = folder, folder / "scheduler_config.json"
    else:
        raise ModelLoadError(
            f"{name} has no config.json or unet/config.json, so it is not a diffusers UNet2DModel; "
            "point at a folder saved with save_pretrained (or pick the bundled model)."
        )
    cfg = _read_json(unet_dir / "config.json")
    cls = cfg.get("_class_name") or ("UNet2DModel" if "block_out_channels" in cfg else "config without _class_name")
    if cls != "UNet2DModel" or "cross_attention_dim" in cfg:
        raise ModelLoadError(
            f"{name} holds a {cls}, but Diffusion Lens needs a pixel-space UNet2DModel "
            "(latent and text-conditional models are not supported)."
        )
    if cfg.get("class_embed_type") not in (None, "") and not cfg.get("num_class_embeds"):
        raise ModelLoadError(
            f"{name} is conditioned through class_embed_type={cfg['class_embed_type']!r}; Diffusion Lens supports "
            "unconditional models and class labels through num_class_embeds only."
        )
    cin, cout = cfg.get("in_channels", 3), cfg.get("out_channels", 3)
    learned = cout == 2 * cin and sched.is_file() and "learned" in str(_read_json(sched).get("variance_type", ""))
    if cin not in (1, 3) or (cout != cin and not learned):
        raise ModelLoadError(
            f"{name} works on {cin}-channel inputs with {cout}-channel outputs; Diffusion Lens needs a grey (1) or "
            "RGB (3) pixel-space model with as many output channels as inputs (latent models are not supported)."
        )
    return _Layout(unet_dir=unet_dir, scheduler_file=sched, config=cfg)


def _load_state_dict(unet_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """Weights as a state dict: safetensors if present, else a ``.bin`` with ``weights_only=True``."""
    safe, pickled = unet_dir / WEIGHTS_SAFE, unet_dir / WEIGHTS_PICKLE
    if not safe.is_file():
        found = sorted(unet_dir.glob("*.safetensors"))
        safe = found[0] if len(found) == 1 else safe
    try:
        if safe.is_file():
            from safetensors.torch import load_file

            return load_file(str(safe), device="cpu")
        if pickled.is_file():
            return torch.load(str(pickled), map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"Refused to load {pickled.name} from {name}: the pickle holds more than plain tensors (possibly code), "
            "and Diffusion Lens only reads weights. Use a safetensors copy of the model."
        ) from exc
    except Exception as exc:  # truncated file, git-lfs pointer, wrong format
        bad = safe if safe.is_file() else pickled
        raise ModelLoadError(
            f"The weights file {bad.name} in {name} is damaged or incomplete ({type(exc).__name__}); "
            "re-download or re-save the model."
        ) from exc
    raise ModelLoadError(
        f"{name} has a config but no weights ({WEIGHTS_SAFE} or {WEIGHTS_PICKLE}); re-download or re-save the model."
    )


def _unet_from_config(config: dict, name: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """diffusers' own UNet2DModel built from a config dict (no repository code is involved)."""
    from diffusers import UNet2DModel

    try:
        with torch.device(device):
            return UNet2DModel.from_config(config)
    except Exception as exc:
        raise ModelLoadError(f"The config.json of {name} does not describe a valid UNet2DModel ({exc}).") from exc


def _check_size(config: dict, name: str) -> None:
    """Refuse oversized models before any weights are read (built on the meta device: no memory)."""
    n = sum(p.numel() for p in _unet_from_config(config, name, "meta").parameters())
    if n > MAX_PARAMETERS:
        raise ModelLoadError(
            f"{name} has {n / 1e6:.1f}M parameters, more than the {MAX_PARAMETERS / 1e6:.0f}M this app allows "
            "(memory is shared by every user); pick a smaller pixel-space DDPM."
        )


def _build_unet(layout: _Layout, name: str) -> torch.nn.Module:
    """UNet2DModel from its config (diffusers' own class: no repository code), weights checked strictly."""
    _check_size(layout.config, name)
    unet = _unet_from_config(layout.config, name)
    state = _load_state_dict(layout.unet_dir, name)
    fix = getattr(unet, "_fix_state_dict_keys_on_load", None)  # old attention names (query/key/value/proj_attn)
    if fix is not None:
        fix(state)
    own = unet.state_dict()
    missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        example = (wrong or missing or unexpected)[0]
        raise ModelLoadError(
            f"The weights in {name} do not match its config.json ({len(wrong)} wrong-shaped, {len(missing)} missing, "
            f"{len(unexpected)} unexpected tensors, e.g. {example}); re-download the model, or re-save it with its config."
        )
    unet.load_state_dict(state, strict=True)
    return unet.eval().requires_grad_(False)


# ---------------------------------------------------------------------------------
# Saving and tiny models
# ---------------------------------------------------------------------------------


def save_model(unet: torch.nn.Module, schedule: Schedule, folder: str | Path, layout: str = "flat") -> Path:
    """Write a diffusers folder: config.json, safetensors weights and the scheduler config.

    ``layout="flat"`` writes everything in ``folder``; ``"pipeline"`` writes
    ``model_index.json``, ``unet/`` and ``scheduler/`` as ``DDPMPipeline`` does. The weights are
    written to a temporary folder and moved into place, then the configs, so a reader (or a
    training run killed mid-save) never sees half a weights file. The project's one checkpoint
    writer: ``python -m model.cli.train`` saves through it too.
    """
    folder = Path(folder)
    if layout not in ("flat", "pipeline"):
        raise ValueError("layout must be 'flat' or 'pipeline'")
    unet_dir = folder if layout == "flat" else folder / "unet"
    sched_dir = folder if layout == "flat" else folder / "scheduler"
    for d in (folder, unet_dir, sched_dir):
        d.mkdir(parents=True, exist_ok=True)
    tmp = unet_dir / ".tmp_save"
    unet.save_pretrained(str(tmp), safe_serialization=True)
    for f in tmp.iterdir():
        os.replace(f, unet_dir / f.name)
    tmp.rmdir()
    (sched_dir / "scheduler_config.json").write_text(json.dumps(schedule.to_scheduler_config(), indent=2) + "\n")
    if layout == "pipeline":
        index = {
            "_class_name": "DDPMPipeline",
            "scheduler": ["diffusers", "DDPMScheduler"],
            "unet": ["diffusers", "UNet2DModel"],
        }
        (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def tiny_unet(sample_size: int = 32, seed: int = 0, channels: int = 3, num_class_embeds: int | None = None):
    """A very small randomly initialised UNet2DModel (for tests and stand-ins); grey with ``channels=1``,
    class-conditional with ``num_class_embeds`` (classes + 1 "no label" index)."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global generator
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=sample_size,
            in_channels=channels,
            out_channels=channels,
            num_class_embeds=num_class_embeds,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=8,
        ).eval()
