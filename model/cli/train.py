"""The command line of :mod:`model.training.train`: train the bundled noise predictor on random photo crops.

python -m model.cli.train --data data/train --out checkpoints/photo-unet --max-minutes 90
"""

from __future__ import annotations

from model.training.train import train


def main(argv=None) -> int:
    """The ``diffusion-lens-train`` entry point: :func:`model.training.train.train`, exit status 0."""
    train(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
