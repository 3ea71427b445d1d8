"""What the sampling commands share: the ``--precision`` option, the process policy applied at the command's edge
(arithmetic, allocator, threads), and the one-line ``error:`` exit."""

from __future__ import annotations

import argparse
import sys

import torch

from model.serving import precision, runtime


def add_precision_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--precision",
        choices=precision.POLICIES,
        default="auto",
        help="auto: the fastest arithmetic that passes the fidelity guard (model/serving/precision.py); fp32: plain fp32",
    )


def apply_policy(args: argparse.Namespace) -> None:
    """This command's policy, set once at its edge before any work: the arithmetic, the allocator (freed tensor
    memory kept for reuse) and, when the command has ``--threads``, torch's thread count."""
    precision.set_policy(args.precision)
    runtime.configure_allocator()
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def fail(msg: str) -> int:
    """Print ``error: msg`` on stderr; the exit status of bad input (2)."""
    print(f"error: {msg}", file=sys.stderr)
    return 2
