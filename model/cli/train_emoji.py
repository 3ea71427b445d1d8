"""Train the words-to-pictures model (autoencoder, category judge, then text encoder + latent U-Net), resumable.

Build the data first (python -m model.cli.data emoji), then, in the background on a shared machine::

    nohup nice -n 15 .venv/bin/python -m model.cli.train_emoji --threads 1 > /work/emoji-train.log 2>&1 &

Stop it at any time (kill PID): the last export in checkpoints/emoji-sd stays usable, and the same command goes on
from the last saved state (checkpoints/emoji-sd/train_state/, every --checkpoint-every seconds). With a GPU:
--device cuda.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from model.emoji.train import EmojiTrainConfig, Trainer


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = EmojiTrainConfig()
    for f in dataclasses.fields(EmojiTrainConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(d, f.name)), default=getattr(d, f.name))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    a = vars(ap.parse_args(argv))
    torch.set_num_threads(a.pop("threads"))
    cfg = EmojiTrainConfig(**a)

    def log(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    Trainer(cfg, log).run()


if __name__ == "__main__":
    raise SystemExit(main())
