"""Issue 36, item 5: every Particle lab and Sampler race chart is readable on the light theme (white) and on the
dark one (Streamlit's #0e1117): the data points x^(i) were black and vanished on the dark background. Each trace's
colour, laid over the background at its opacity, must stand out from both (the data points at 3:1, WCAG's figure
for graphics; everything else at 2:1). The charts as Chromium draws them: tests/e2e/test_browser_particles_theme.py."""

from __future__ import annotations

import numpy as np
import pytest

from app.charts import particles as pp

BACKGROUNDS = {"light": (255, 255, 255), "dark": (14, 17, 23)}


def rgb(colour: str) -> tuple[tuple[float, float, float], float]:
    """(r, g, b) 0..255 and alpha of "#rrggbb", "#rgb" or "rgba(r,g,b,a)"."""
    c = colour.strip()
    if c.startswith("#"):
        h = c[1:] if len(c) == 7 else "".join(ch * 2 for ch in c[1:4])
        return tuple(int(h[i : i + 2], 16) for i in (0, 2, 4)), 1.0
    parts = [float(p) for p in c[c.index("(") + 1 : -1].split(",")]
    return tuple(parts[:3]), parts[3] if len(parts) == 4 else 1.0


def luminance(c) -> float:
    lin = [(v / 255) / 12.92 if v / 255 <= 0.04045 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(colour: str, opacity: float, background) -> float:
    """WCAG contrast ratio of ``colour`` drawn at ``opacity`` over ``background``."""
    c, alpha = rgb(colour)
    a = alpha * opacity
    mixed = [a * v + (1 - a) * b for v, b in zip(c, background, strict=True)]
    hi, lo = sorted((luminance(mixed), luminance(background)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def best_colour(trace) -> tuple[str, float]:
    """The colour a reader sees a trace by, and its contrast on the worse background: the marker's fill, or its
    outline where the fill is see-through, or the line."""
    opacity = 1.0 if trace.opacity is None else trace.opacity
    found = []
    if "markers" in (trace.mode or ""):
        m = trace.marker
        fill = m.color if m.color is not None else trace.line.color  # markers on a line take the line's colour
        found.append((fill, opacity * (1.0 if m.opacity is None else m.opacity)))
        if m.line is not None and m.line.color is not None and (m.line.width or 0) > 0:
            found.append((m.line.color, opacity))
    if "lines" in (trace.mode or ""):
        found.append((trace.line.color, opacity))
    assert found and all(isinstance(c, str) for c, _ in found), f"{trace.name}: no colour of its own"
    scored = [(c, min(contrast(c, o, bg) for bg in BACKGROUNDS.values())) for c, o in found]
    return max(scored, key=lambda s: s[1])


def figures():
    rng = np.random.default_rng(0)
    pts, grid = rng.normal(size=(20, 2)), rng.normal(size=(16, 2))
    path = rng.normal(size=(5, 6, 2))
    names = ["DDPM", "DDIM", "Euler", "Heun", "DPM-Solver++", "UniPC", "FlowMatch Euler", "FlowMatch Heun"]
    rows = [{"scheduler": n, "evaluations": s, "quality": 0.1 / s, "straightness": 0.8} for n in names for s in (4, 8)]
    return {
        "field": pp.field_figure(pts, grid, grid, "f", noisy=pts + 0.1, learned=grid / 2),
        "lab paths": pp.paths_figure(pts, {"ODE (DDIM)": path, "SDE (DDPM)": path}, "p"),
        "race paths": pp.paths_figure(pts, {n: path for n in names}, "p"),
        "samples": pp.samples_figure(pts, pts, "s"),
        "loss": pp.loss_figure(list(np.linspace(1, 0.1, 60)), 60),
        "race": pp.race_figure(rows, "MMD² to the data"),
        "brush": pp.brush_figure(grid),
    }


@pytest.mark.parametrize("name", list(figures()))
def test_every_trace_stands_out_on_the_light_and_the_dark_theme(name):
    for trace in figures()[name].data:
        if trace.x is not None and len(trace.x) == 0:
            continue  # an empty trace draws nothing
        colour, worst = best_colour(trace)
        need = 3.0 if trace.name and trace.name.startswith("data") else 2.0
        assert worst >= need, f"{name}: {trace.name} in {colour} has contrast {worst:.2f} on one theme"


def test_the_old_black_data_points_fail_on_the_dark_theme():
    """The check itself: #111111 (the old data colour) is what vanished."""
    assert contrast("#111111", 0.8, BACKGROUNDS["dark"]) < 1.5
    assert min(contrast(pp.DATA, 1.0, bg) for bg in BACKGROUNDS.values()) >= 3
