"""Cached pictures (app/ui/pictures.py) send what st.image would have sent for the Pillow picture."""

from __future__ import annotations

import torch
from streamlit.elements.lib import image_utils
from streamlit.elements.lib.layout_utils import LayoutConfig

from app.charts.render import jpeg_bytes, noise_picture, picture


def test_jpeg_bytes_are_st_image_s_own_encoding_and_go_out_unchanged():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for img in (picture(x), noise_picture(x * 3), picture(x[:, :1], 128)):
        fmt = image_utils._validate_image_format_string(img, "auto")  # st.image's default output_format
        assert fmt == "JPEG"
        data = jpeg_bytes(img)
        assert data == image_utils._pil_to_bytes(img, fmt)
        for width in ("stretch", img.width):  # as the pages and the sidebar show them: not resized, not re-encoded
            assert image_utils._ensure_image_size_and_format(data, LayoutConfig(width=width), fmt) is data
