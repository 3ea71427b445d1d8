"""Cached computations for the "Inside the network" page.

Same pattern as :mod:`app.compute.reverse`: ``st.cache_data`` keyed on cheap exact keys (image key =
sha256 of the bytes, resolution, model key, t, seed, class label); the tensors and the model are
``_``-prefixed arguments, not hashed. One forward pass per key, recorded by
:func:`model.nets.probe.capture`: what is cached are uint8 pictures of a few channels per tensor, the
attention layers' queries and keys (float16) and the small embedding vectors, never whole activations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from app import settings
from app.compute.reverse import fixed_noise
from model.diffusion.forward import q_sample
from model.diffusion.reverse import output_to_eps
from model.images.tensors import noise_to_uint8, tensor_to_uint8, to_channels
from model.nets import anatomy, probe
from model.nets.network import LoadedModel
from model.nets.probe import FEATURE_RANGE as FEATURE_RANGE
from model.nets.probe import query_weights as query_weights

TIME_TABLE_POINTS = 250  # columns of the time-embedding heat-map (t = 0 … T-1)


@dataclass(frozen=True)
class InsidePass:
    """One recorded forward pass at t, as the page needs it (everything small)."""

    t: int
    resolution: int  # the network's input size (the working resolution, padded up to a multiple if needed)
    x_t: np.ndarray  # (R, R, 3) uint8: the network's input
    eps_hat: np.ndarray  # (R, R, 3) uint8 on the noise scale: what it predicts
    capture: probe.Capture
    emb: anatomy.Embeddings
    seconds: float  # wall time of the pass (forward + hooks + pictures), when it was computed


def network_size(model: LoadedModel, resolution: int) -> int:
    """The input size the network gets: ``resolution`` rounded up to a multiple of ``model.size_multiple``."""
    m = model.size_multiple
    return int(resolution) + (-int(resolution)) % m


def label_options(model: LoadedModel) -> dict[str, int]:
    """``{shown name: label index}`` for a class-conditional model ("no label" last, when it has one); {}."""
    if not model.conditional:
        return {}
    names = model.classes or ()
    options = {f"{i}: {n}": i for i, n in enumerate(names)}
    if model.null_label is not None:
        options["no label (∅)"] = int(model.null_label)
    return options


@st.cache_data(max_entries=32, show_spinner=False)
def inside_pass(
    image_key: str,
    resolution: int,
    model: str,
    t: int,
    seed: int,
    label: int | None,
    _x0: torch.Tensor,
    _model: LoadedModel,
) -> InsidePass:
    """Noise the image to x_t (eq. 4, the seed's ε, the same ε as the Denoise page) and record one pass.

    :param _x0: (1, C, R, R) in [-1, 1]; converted to the model's channels if needed.
    :param label: class index for a class-conditional model (None: its "no label" index).
    """
    start = time.perf_counter()
    x0 = to_channels(_x0, _model.channels)
    eps = fixed_noise(x0, seed)
    x_t, _ = q_sample(_model.schedule, x0, int(t), noise=eps)  # eq. 4
    size = network_size(_model, x0.shape[-1])
    pad = size - x0.shape[-1]
    x_in = torch.nn.functional.pad(x_t, (0, pad, 0, pad), mode="reflect") if pad else x_t
    y = _model.labels(label, 1)
    with settings.serving().queue.slot():  # the server's fair queue on forward passes (model/serving/runtime.py)
        cap, out = probe.capture(_model.unet, x_in, int(t), y)
    c, r = x0.shape[1], x0.shape[-1]
    out = out[:, :c, :r, :r]  # a learned-variance head's extra channels and any padding off
    kind = _model.schedule.prediction_type
    eps_hat = out if kind == "epsilon" else output_to_eps(_model.schedule, out, x_t, int(t), kind)
    emb = anatomy.embeddings(_model.unet, int(t), y)
    return InsidePass(
        t=int(t),
        resolution=size,
        x_t=tensor_to_uint8(x_t),
        eps_hat=noise_to_uint8(eps_hat),
        capture=cap,
        emb=emb,
        seconds=time.perf_counter() - start,
    )


@st.cache_data(max_entries=16, show_spinner=False)
def architecture(model: str, resolution: int, _model: LoadedModel) -> anatomy.Architecture:
    """The model's parts, shapes at ``resolution`` px and parameter counts (no forward pass)."""
    return anatomy.architecture(_model.unet, resolution)


@st.cache_data(max_entries=16, show_spinner=False)
def time_table(model: str, T: int, _model: LoadedModel) -> tuple[list[int], np.ndarray]:
    """``(ts, features)``: the time features at :data:`TIME_TABLE_POINTS` evenly spaced t, (len(ts), dim)."""
    ts = sorted({round(i * (T - 1) / (TIME_TABLE_POINTS - 1)) for i in range(TIME_TABLE_POINTS)})
    feats = anatomy.time_features(_model.unet, torch.tensor(ts))
    return ts, feats.numpy()
