"""What the sampling commands share: the ``--precision`` option, the command's edge (its serving settings read
once, the :class:`model.serving.service.Serving` object that runs its model, the allocator and threads), and the
one-line ``error:`` exit, and reading a picture file with a one-sentence error."""

from __future__ import annotations

import argparse
import sys

import torch

from model.serving import process
from model.serving.service import Serving
from model.serving.settings import POLICIES, ServingSettings, SettingsError


def add_precision_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--precision",
        choices=POLICIES,
        default="auto",
        help="auto: the fastest arithmetic that passes the fidelity guard (model/serving/precision.py); fp32: plain fp32",
    )


def apply_policy(args: argparse.Namespace) -> Serving:
    """This command's edge, before any work: the serving settings read once from the environment (a bad value exits
    with one ``error:`` sentence), the arithmetic (``--precision``, unless ``DIFFUSION_LENS_PRECISION`` says), the
    allocator (freed tensor memory kept for reuse) and, when the command has ``--threads``, torch's thread count.
    Returns the :class:`Serving` object that runs the command's model (see :func:`load`)."""
    try:
        settings = ServingSettings.from_environment()
    except SettingsError as exc:
        raise SystemExit(fail(str(exc))) from None
    process.configure_allocator(settings.malloc != "default")
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return Serving(settings, policy=args.precision)


def load(serving: Serving, source):
    """The model ``source`` names (:func:`model.nets.network.load_model`, on the settings' device), run by
    ``serving`` with its arithmetic."""
    from model.nets.network import load_model

    return serving.prepare(load_model(source, device=serving.settings.device))


def read_picture_file(path) -> bytes:
    """The bytes of the picture file at ``path``, or :class:`model.images.decode.ImageLoadError` with one sentence
    (a missing or unreadable file; the caller puts the path before it, as it does for a file that will not decode)."""
    from pathlib import Path

    from model.images.decode import ImageLoadError

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImageLoadError(f"cannot read the file ({exc.strerror or exc}). Check the path.") from exc


def fail(msg: str) -> int:
    """Print ``error: msg`` on stderr; the exit status of bad input (2)."""
    print(f"error: {msg}", file=sys.stderr)
    return 2
