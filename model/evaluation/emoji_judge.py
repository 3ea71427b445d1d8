"""The category judge of the words-to-pictures model: a small CNN that names an emoji's category (9 classes).

It is trained on the emoji pictures outside the held-out 5 % (both art sets; :mod:`model.emoji.data`), by the
emoji training command (:mod:`model.cli.train_emoji`), and saved as ``checkpoints/emoji-judge/`` (``judge.json``:
config and held-out accuracy, ``judge.safetensors``: weights). ``bench/emoji.py`` asks it which category each
generated picture looks like: the "category agreement" is the share that matches the category of the prompt's
words. Pictures are uint8 (N, 32, 32, 3) everywhere in this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model.emoji.data import CATEGORIES, to_model

WEIGHTS = "judge.safetensors"
META = "judge.json"


@dataclass(frozen=True)
class EmojiJudgeConfig:
    channels: tuple[int, ...] = (32, 64, 128)  # conv3×3 + BatchNorm + ReLU + 2×2 max-pool per entry
    num_classes: int = len(CATEGORIES)


class EmojiJudge(nn.Module):
    """(B, 3, 32, 32) in [-1, 1] -> logits (B, 9)."""

    def __init__(self, config: EmojiJudgeConfig = EmojiJudgeConfig()):
        super().__init__()
        self.config = config
        layers, c_in = [], 3
        for c in config.channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2))
        self.head = nn.Linear(c_in, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def predict(self, images_uint8: np.ndarray, batch: int = 256) -> np.ndarray:
        """(N, 32, 32, 3) uint8 -> (N,) int64 category indices."""
        self.eval()
        out = [self(to_model(images_uint8[i : i + batch])).argmax(1) for i in range(0, len(images_uint8), batch)]
        return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def train_judge(images: np.ndarray, labels: np.ndarray, steps: int, seed: int = 0, batch: int = 64) -> EmojiJudge:
    """Adam, cross-entropy, random horizontal flips and 2-px shifts; ``images`` uint8 (N, 32, 32, 3)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    judge = EmojiJudge()
    opt = torch.optim.Adam(judge.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=max(steps, 1))
    x_all, y_all = to_model(images), torch.from_numpy(np.asarray(labels, np.int64))
    judge.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (batch,), generator=g)
        x = x_all[idx]
        flip = torch.rand(batch, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
        x = torch.roll(x, (dy, dx), (2, 3))
        loss = nn.functional.cross_entropy(judge(x), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    judge.eval()
    return judge


def save_judge(judge: EmojiJudge, folder: Path, metrics: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, folder / WEIGHTS)
    doc = {"config": asdict(judge.config), "categories": list(CATEGORIES), **metrics}
    (folder / META).write_text(json.dumps(doc, indent=2) + "\n")


def load_judge(folder: Path) -> EmojiJudge:
    folder = Path(folder)
    if not (folder / META).exists():
        raise FileNotFoundError(f"no emoji judge in {folder}: train it with python -m model.cli.train_emoji")
    cfg = json.loads((folder / META).read_text())["config"]
    judge = EmojiJudge(EmojiJudgeConfig(channels=tuple(cfg["channels"]), num_classes=cfg["num_classes"]))
    judge.load_state_dict(load_file(folder / WEIGHTS))
    return judge.eval()
