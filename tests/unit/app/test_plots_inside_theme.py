"""Issue 26: in Streamlit's dark theme the Inside diagram's plain labels, time-embedding box and edge labels were
black on near-black, because Graphviz draws black text on a transparent background. The diagram is drawn on a
light card of its own, so every label is dark on light in either theme."""

from __future__ import annotations

import re

from app.charts import inside
from model.nets import anatomy
from model.nets.checkpoint_io import tiny_unet


def _luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_the_diagram_has_an_opaque_light_background_behind_its_black_text():
    dot = inside.architecture_dot(anatomy.architecture(tiny_unet(32), 32), "mid", label_name="3: Dress")
    (bg,) = re.findall(r'graph \[[^]]*bgcolor="([^"]+)"', dot)
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", bg), f"bgcolor {bg!r} lets the page's theme show through"
    assert _luminance(bg) > 0.8
    assert "fontcolor" not in dot  # all text in Graphviz's default black, which needs that light card
    assert '"emb" [label=' in dot and '"label" [label=' in dot  # the boxes that were unreadable are drawn
