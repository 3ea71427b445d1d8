"""Which image this session looks at: the sidebar's sample or upload, at the chosen resolution, as x_0."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from app.compute.core import SAMPLES, image_tensor, sample_bytes
from model.images.tensors import to_channels


@dataclass(frozen=True)
class CurrentImage:
    key: str  # sha256 of the bytes (+ ":grey" when converted for a grey model)
    name: str  # shown to the user
    resolution: int
    x0: torch.Tensor  # (1, C, R, R) in [-1, 1]; C = 3, or 1 for a grey model

    @property
    def grey(self) -> bool:
        return self.x0.shape[1] == 1


def current_image(channels: int = 3) -> CurrentImage | None:
    """The image chosen in the sidebar at the chosen resolution, or None if there is none yet.

    ``channels=1`` (a grey model) converts it to grey (BT.601 luma); its cache key then ends in ":grey".
    Raises :class:`ImageLoadError` (a message for the user) for a bad upload.
    """
    ss = st.session_state
    res = int(ss["resolution"])
    if ss["image_source"] == "Upload":
        if not ss.get("upload_bytes"):
            return None
        key, data, name = ss["upload_digest"], ss["upload_bytes"], ss["upload_name"] or "your upload"
    else:
        if ss["sample_name"] not in SAMPLES:  # e.g. a stale name from an old link
            ss["sample_name"] = "astronaut"
        key, data = sample_bytes(ss["sample_name"])
        name = ss["sample_name"]
    x0 = image_tensor(key, res, data)
    if channels != x0.shape[1]:
        x0, key = to_channels(x0, channels), f"{key}:grey" if channels == 1 else key
    return CurrentImage(key=key, name=name, resolution=res, x0=x0)
