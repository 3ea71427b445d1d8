"""Pictures that stay the same from one rerun to the next, encoded once.

``st.image`` encodes a Pillow picture on every rerun (JPEG at quality 100 for RGB), while
the GIL is held for part of it. Most of a slider step's pictures are new, but x₀ (on the
pages and as the sidebar's thumbnail) and the noise ε of a seed are the same at every t,
so on a classroom server they were encoded again at every step of every student. Here
they are encoded once (:func:`app.charts.render.jpeg_bytes`, the same bytes ``st.image`` would
make) and kept in ``st.cache_data``, keyed like the rest of the app: the image's sha256,
the resolution, the size shown, the seed. ``st.image`` sends cached bytes as they are.
"""

from __future__ import annotations

import streamlit as st
import torch

from app.charts.render import DISPLAY_PX, jpeg_bytes, noise_picture, picture


@st.cache_data(max_entries=512, show_spinner=False)
def photo(image_key: str, resolution: int, _x0: torch.Tensor, size: int = DISPLAY_PX) -> bytes:
    """x₀ (the image ``image_key`` at ``resolution``) as :func:`app.charts.render.picture` shows it, encoded."""
    return jpeg_bytes(picture(_x0, size))


@st.cache_data(max_entries=512, show_spinner=False)
def noise(page: str, image_key: str, resolution: int, seed: int, _eps: torch.Tensor) -> bytes:
    """The noise ε that ``page`` draws for ``seed`` on that image, as :func:`app.charts.render.noise_picture`, encoded."""
    return jpeg_bytes(noise_picture(_eps))
