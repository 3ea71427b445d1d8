"""The three panels' names (x_t, ε̂, x̂₀; in ASCII where no font can draw them) and the fonts that draw them.

Shared by the grid figure (:mod:`model.images.figure`), the 16:9 slide (:mod:`model.images.slide`) and the
emoji figure (:mod:`model.emoji.figure`): :func:`unicode_font` finds a TrueType font with Greek, subscripts and
the combining hat, :func:`panel_labels` spells the names for it (ASCII when the machine has none), and
:func:`label_font` is Pillow's default font at a size, for the "t = ..." labels.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from PIL import ImageFont


def label_font(size: int = 14) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


# The three panels' names, spelled as on every page and in the glossary (x_t, ε̂, x̂₀); drawn with a Unicode
# TrueType font, or in ASCII when the machine has none (Pillow's default font has no Greek glyphs).
LABELS = ("x_t", "ε̂", "x̂₀")
ASCII_LABELS = ("x_t", "eps_hat", "x0_hat")
# fonts with Greek, subscripts and the combining hat, first found wins (DejaVu ships with Debian and matplotlib)
UNICODE_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def _unicode_font_path() -> str | None:
    for path in UNICODE_FONTS:
        if Path(path).is_file():
            return path
    try:  # matplotlib's copy of DejaVu, without importing matplotlib
        spec = importlib.util.find_spec("matplotlib")
        if spec and spec.origin:
            mpl = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
            if mpl.is_file():
                return str(mpl)
    except (ImportError, ValueError):
        pass
    return None


def unicode_font(size: int) -> tuple[ImageFont.ImageFont, bool]:
    """(font, True) for a Unicode TrueType font at ``size`` px, or (Pillow's default, False) when none is found."""
    path = _unicode_font_path()
    if path is not None:
        return ImageFont.truetype(path, size), True
    return label_font(size), False


def panel_labels(unicode_ok: bool) -> tuple[str, str, str]:
    """The panels' names for a font that can (True) or cannot (False) draw Greek and the combining hat."""
    return LABELS if unicode_ok else ASCII_LABELS
