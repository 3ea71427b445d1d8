"""Issue 26: one spelling of x_t, x̂₀ and ε̂ on every page, in the grid figure and on the slide (the glossary's):
no "xₜ", "x̂_0" or "x0_hat" in any text the app or the figure makers show."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

from model.images import figure, labels

# xₜ₋₁ (the step before x_t, as in Lₜ₋₁) has no other spelling in plain text, so only a lone xₜ counts
OTHER_SPELLINGS = ("xₜ(?!₋)", "x̂_0", r"\bx0_hat", r"\beps_hat", r"x\^_0")


def _shown_strings(path):
    """String constants of a module, docstrings left out (they may name the code's variables, x0_hat, eps_hat)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_one_spelling_of_the_three_panels_everywhere():
    files = [
        *(ROOT / "app").rglob("*.py"),
        *(ROOT / "model/images" / name for name in ("figure.py", "slide.py", "labels.py")),
    ]
    found = []
    for path in files:
        if path.name == "glossary.py":  # the glossary lists the other spellings as aliases, to find them
            continue
        for line, text in _shown_strings(path):
            if text.isidentifier() or (path == ROOT / "model/images/labels.py" and text in labels.ASCII_LABELS):
                continue  # a dict key or a name in code; the fallback for a machine with no Unicode font
            found += [f"{path.relative_to(ROOT)}:{line}: {s}" for s in OTHER_SPELLINGS if re.search(s, text)]
    assert not found, found
    assert labels.LABELS == ("x_t", "ε̂", "x̂₀")


def test_the_grid_figure_labels_its_columns_like_the_pages(monkeypatch):
    """The grid's headers are drawn with the Unicode font when there is one (the same labels as the slide)."""
    drawn = []
    monkeypatch.setattr(figure.ImageDraw.ImageDraw, "text", lambda self, xy, text, **kw: drawn.append(text))
    import numpy as np

    frame = figure.Frame(0, 1, 10, *(np.zeros((8, 8, 3), np.uint8) for _ in range(3)))
    figure.grid_image([frame], rows=1)
    _, unicode_ok = labels.unicode_font(12)
    assert set(labels.panel_labels(unicode_ok)) <= set(drawn)
