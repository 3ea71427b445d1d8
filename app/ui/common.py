"""Small helpers that pages share: getting the image and the model, or a clear message."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import streamlit as st

from app.compute.progress import Progress
from app.session import image, which_model
from model.images.decode import ImageLoadError
from model.nets.checkpoint_io import ModelLoadError


def model_channels() -> int:
    """Channels of the chosen model (1 for a grey model), or 3 while no model can be loaded."""
    try:
        return which_model.current_model().channels
    except ModelLoadError:
        return 3


def require_image() -> image.CurrentImage:
    """The current image (grey when the chosen model is grey), or a friendly message and ``st.stop()``."""
    try:
        img = image.current_image(model_channels())
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
            return which_model.current_model()
    except ModelLoadError as exc:
        st.error(f"{exc}")
        st.stop()


SLOW_CHUNK_S = 0.05  # a partial result that took longer was computed, not read from the cache
REDRAW_S = 0.4  # a partial chart is redrawn at most this often (each redraw builds and sends a figure)


def progressive(items: Iterable[dict]) -> Iterator[dict]:
    """The items of a progressive computation worth drawing (each a dict with ``done`` and ``of``).

    The complete one, and a partial one (``done < of``) when it took more than :data:`SLOW_CHUNK_S` to come (so
    it was computed) and nothing was drawn in the last :data:`REDRAW_S` seconds. A chunk from the cache comes at
    once, so a rerun with the same settings draws the result once instead of replaying every partial chart.
    """
    it = iter(items)
    drawn = -float("inf")
    while True:
        start = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        now = time.perf_counter()
        if item["done"] >= item["of"] or (now - start > SLOW_CHUNK_S and now - drawn >= REDRAW_S):
            drawn = now
            yield item


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A progress bar for a computation in app/compute/ that reports through its ``_progress`` callback: drawn at
    the first report (a cached result reports nothing, so no bar flashes), gone when the block ends."""
    slot = st.empty()
    bar = None

    def report(fraction: float, text: str) -> None:
        nonlocal bar
        fraction = min(1.0, max(0.0, float(fraction)))
        if bar is None:
            with slot:
                bar = st.progress(fraction, text=text)
        else:
            bar.progress(fraction, text=text)

    try:
        yield report
    finally:
        slot.empty()
