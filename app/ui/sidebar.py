"""The sidebar every page shares: the image, the working resolution and the model."""

from __future__ import annotations

import streamlit as st

from app.compute import core
from app.session import image
from app.ui import pictures
from app.ui.common import model_channels
from app.ui.model_picker import model_picker
from model.images.decode import ImageLoadError

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"]


def _store_upload() -> None:
    """on_change of the uploader: keep the bytes and their digest in session state."""
    up = st.session_state.get("uploader")
    ss = st.session_state
    if up is None:
        ss["upload_bytes"], ss["upload_digest"], ss["upload_name"] = None, None, None
        return
    data = up.getvalue()
    ss["upload_bytes"], ss["upload_digest"], ss["upload_name"] = data, core.digest(data), up.name


NO_PHOTO_PAGES = (
    "particles",
    "race",
)  # pages that draw points or generate from noise: no photo (words turns one into an emoji)


def render(url_path: str = "") -> None:
    """The sidebar of the page at ``url_path`` (its st.Page url_path; "" for the default page)."""
    with st.sidebar:
        if url_path not in NO_PHOTO_PAGES:
            _image_section()
        _model_section()
        st.markdown("### Classroom")
        st.toggle(
            "Presentation mode",
            key="present",
            help="Larger type, no sidebar, and Play buttons for a projector. The address gets ?present=1, so a "
            "link opens the same way. Leave it with the button at the top of the page.",
        )


def _image_section() -> None:
    """The photo picker and the working resolution. Its widgets keep their values for the session
    (persist_state), so a visit to a page without them does not forget the learner's photo."""
    st.markdown("### Your image")
    st.radio("Image source", ["Sample photo", "Upload"], key="image_source", horizontal=True, persist_state="session")
    if st.session_state["image_source"] == "Upload":
        st.file_uploader(
            "Upload a photo (PNG, JPEG, WebP, GIF, BMP, TIFF)",
            type=UPLOAD_TYPES,
            key="uploader",
            on_change=_store_upload,
        )
    else:
        st.selectbox(
            "Sample photo",
            list(core.SAMPLES),
            key="sample_name",
            format_func=lambda s: f"{s.title()} (Fashion-MNIST)" if s in core.FASHION_SAMPLES else s.title(),
            persist_state="session",
        )
    st.select_slider(
        "Working resolution (px)",
        options=list(core.RESOLUTIONS),
        key="resolution",
        help="The photo is centre-cropped to a square and resized to this size. "
        "64 px is fast everywhere; 128 px and up is sharper but slower on a CPU.",
        persist_state="session",
    )
    try:
        img = image.current_image(model_channels())
    except ImageLoadError:
        img = None  # the page shows the message, once, in the main area
    if img is not None:
        thumb = pictures.photo(img.key, img.resolution, img.x0, 128)
        st.image(thumb, caption=f"x₀: {img.name}, {img.resolution}×{img.resolution}", width=128)


def _model_section() -> None:
    st.markdown("### Model")
    model_picker()
