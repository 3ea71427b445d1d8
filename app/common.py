"""Small helpers that pages share: getting the image and the model, or a clear message."""

from __future__ import annotations

import streamlit as st

from app import backend
from model.images import ImageLoadError
from model.network import ModelLoadError


def model_channels() -> int:
    """Channels of the chosen model (1 for a grey model), or 3 while no model can be loaded."""
    try:
        return backend.current_model().channels
    except ModelLoadError:
        return 3


def require_image() -> backend.CurrentImage:
    """The current image (grey when the chosen model is grey), or a friendly message and ``st.stop()``."""
    try:
        img = backend.current_image(model_channels())
    except ImageLoadError as exc:
        st.error(f"{exc}")
        st.stop()
    if img is None:
        st.info("Upload a photo in the sidebar, or switch the image source back to a sample photo.")
        st.stop()
    return img


def require_model():
    """The chosen eps-model, or a friendly message and ``st.stop()``."""
    try:
        with st.spinner("Loading the model…"):
            return backend.current_model()
    except ModelLoadError as exc:
        st.error(f"{exc}")
        st.stop()
