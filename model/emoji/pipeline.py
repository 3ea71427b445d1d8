"""The words-to-pictures model on disk and in memory: one folder in the layout of a diffusers Stable Diffusion
pipeline, loaded into one frozen :class:`EmojiPipeline` (read-only, so one copy serves every session).

    checkpoints/emoji-sd/
        model_index.json             what is in the folder, and what the training reached (metrics)
        tokenizer/vocab.json         the word list (:mod:`model.emoji.tokenizer`)
        text_encoder/                config.json + diffusion_pytorch_model.safetensors (fp16)
        vae/                         AutoencoderKL: config.json (its scaling_factor included) + fp16 weights
        unet/                        UNet2DConditionModel: config.json + fp16 weights
        scheduler/scheduler_config.json   the noise schedule (:func:`model.diffusion.schedule.schedule_from_config`)
        README.md                    the model card
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from model.diffusion.schedule import Schedule, make_schedule, schedule_from_config
from model.emoji.nets import TextEncoder
from model.emoji.tokenizer import Tokenizer

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "emoji-sd"
PARTS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")


def make_emoji_schedule() -> Schedule:
    """Stable Diffusion's schedule: beta linear in sqrt from 0.00085 to 0.012 over T = 1000, eps-prediction; the
    latent is not bounded, so x0_hat is not clipped."""
    return make_schedule("scaled_linear", 1000, clip_sample=False)


class ModelNotTrained(FileNotFoundError):
    """The folder lacks a part: the message says which and how to train it."""


@dataclass(frozen=True)
class EmojiPipeline:
    tokenizer: Tokenizer
    text_encoder: TextEncoder
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    schedule: Schedule
    info: dict  # model_index.json: metrics and training record

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)


def save_part(model: torch.nn.Module, folder: Path) -> None:
    """A copy of ``model`` in fp16 safetensors + config.json, written beside and then moved in (never half-written)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    copy.deepcopy(model).to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    config = tmp / "config.json"  # a part loaded from a folder would record that folder's path: not the layout's
    if config.exists() and "_name_or_path" in (cfg := json.loads(config.read_text())):
        del cfg["_name_or_path"]
        config.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def write_index(folder: Path, info: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"_class_name": "EmojiPipeline (Diffusion Lens)", "parts": list(PARTS), **info}
    (folder / "model_index.json").write_text(json.dumps(doc, indent=2) + "\n")


def save_schedule(folder: Path, schedule: Schedule) -> None:
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(schedule.to_scheduler_config(), indent=2))


def load_vae(folder: Path = DEFAULT_DIR) -> AutoencoderKL:
    if not (Path(folder) / "vae" / "config.json").exists():
        raise ModelNotTrained(
            f"the autoencoder is not trained yet (no {folder}/vae): run python -m model.cli.train_emoji"
        )
    return AutoencoderKL.from_pretrained(Path(folder) / "vae", torch_dtype=torch.float32).eval()


def load_pipeline(folder: Path = DEFAULT_DIR) -> EmojiPipeline:
    """Every part of the model in ``folder``, float32 on the CPU, in eval mode; :class:`ModelNotTrained` if a part
    is missing."""
    folder = Path(folder)
    missing = [p for p in PARTS if not (folder / p).is_dir()]
    if missing:
        raise ModelNotTrained(
            f"the words-to-pictures model is not trained yet ({', '.join(missing)} missing in {folder}): "
            "run python -m model.cli.train_emoji"
        )
    tok = Tokenizer.load(folder / "tokenizer")
    te = TextEncoder.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    cfg = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    info = json.loads((folder / "model_index.json").read_text()) if (folder / "model_index.json").exists() else {}
    return EmojiPipeline(tok, te, load_vae(folder), unet, schedule_from_config(cfg), info)
