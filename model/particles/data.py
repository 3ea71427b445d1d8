"""2-D data sets for the particle lab: moons, rings, a few points, and a set a person typed or brushed.

Every data set is a ``(N, 2)`` float32 tensor scaled to about [-1, 1] (the range the noise schedules were made for),
drawn from an explicit ``torch.Generator``: the same seed gives the same points.
"""

from __future__ import annotations

import math

import numpy as np
import torch

DATASETS = ("moons", "rings", "few points", "your points")
MAX_POINTS = 2000  # a typed or brushed set larger than this is refused (the exact denoiser is O(N) per particle)
MAX_TEXT_CHARS = 64_000  # typed text longer than this is refused before it is read (2,000 points of "-0.123, 0.456")
NO_POINTS = "There are no points yet: type at least one point as x, y, or brush some on the grid."
COORD_LIMIT = 3.0  # typed coordinates must lie in [-3, 3]


def moons(n: int, generator: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    """Two interleaved half circles (scikit-learn's ``make_moons``), centred and scaled to about [-1, 1]. (n, 2)."""
    n_up = n // 2
    u = torch.rand(n, generator=generator) * math.pi
    up = torch.stack([torch.cos(u[:n_up]), torch.sin(u[:n_up])], dim=1)
    down = torch.stack([1 - torch.cos(u[n_up:]), 0.5 - torch.sin(u[n_up:])], dim=1)
    pts = torch.cat([up, down]) + noise * torch.randn(n, 2, generator=generator)
    return ((pts - torch.tensor([0.5, 0.25])) / 1.5).float()


def rings(n: int, generator: torch.Generator, noise: float = 0.03) -> torch.Tensor:
    """Two concentric circles of radius 0.9 and 0.45 (2/3 of the points on the outer one). (n, 2)."""
    n_out = (2 * n) // 3
    radius = torch.cat([torch.full((n_out,), 0.9), torch.full((n - n_out,), 0.45)])
    u = torch.rand(n, generator=generator) * 2 * math.pi
    pts = radius[:, None] * torch.stack([torch.cos(u), torch.sin(u)], dim=1)
    return (pts + noise * torch.randn(n, 2, generator=generator)).float()


def few_points(k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` points spread on a circle of radius 0.7 with a random phase (k = 1 gives one point at (0.5, 0.3)). (k, 2)."""
    if k == 1:
        return torch.tensor([[0.5, 0.3]])
    phase = float(torch.rand(1, generator=generator)) * 2 * math.pi
    u = phase + torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return (0.7 * torch.stack([torch.cos(u), torch.sin(u)], dim=1)).float()


def make_dataset(name: str, n: int, seed: int) -> torch.Tensor:
    """The named built-in data set with ``n`` points (``k`` for "few points"), seeded. (n, 2) float32."""
    g = torch.Generator().manual_seed(int(seed))
    if name in ("moons", "rings"):
        pts = moons(n, g) if name == "moons" else rings(n, g)
        return pts[torch.randperm(n, generator=g)]  # shuffled: the first k points are a fair sample of the set
    if name == "few points":
        return few_points(n, g)
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS[:3])}")


def parse_points(text: str) -> torch.Tensor:
    """Points typed one per line as ``x, y`` (or ``x y``); blank lines and ``#`` comments are skipped. (N, 2).

    Raises ``ValueError`` with one sentence a person can act on: text longer than :data:`MAX_TEXT_CHARS` (checked
    before anything is read), more than :data:`MAX_POINTS` points (checked as the lines are read, so no more than that
    is parsed), a line that is not two numbers, a NaN or infinity, or a coordinate outside [-3, 3].
    """
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(
            f"The text is {len(text):,} characters, more than the {MAX_TEXT_CHARS:,} the lab reads: "
            f"keep it to at most {MAX_POINTS:,} points, one per line."
        )
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if len(rows) == MAX_POINTS:
            raise ValueError(f"There are more than {MAX_POINTS:,} points, more than the lab handles: use fewer.")
        parts = line.replace(",", " ").replace(";", " ").split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 2:
            raise ValueError(f"Line {number} ({line!r}) is not two numbers: write one point per line as x, y.")
        rows.append(values)
    return check_points(np.asarray(rows, dtype=np.float64).reshape(-1, 2))


def check_points(points) -> torch.Tensor:
    """Validate a (N, 2) array of points and return it as float32; ``ValueError`` (one sentence) otherwise."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(NO_POINTS)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"Points must be pairs (x, y); got an array of shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError("A coordinate is NaN or infinite: every point needs two finite numbers.")
    if np.abs(arr).max() > COORD_LIMIT:
        raise ValueError(
            f"A coordinate lies outside [-{COORD_LIMIT:g}, {COORD_LIMIT:g}]: keep the points near the origin."
        )
    if len(arr) > MAX_POINTS:
        raise ValueError(f"{len(arr)} points is more than the {MAX_POINTS} the lab handles: use fewer.")
    return torch.as_tensor(arr, dtype=torch.float32)


def brush_grid(n: int = 41, extent: float = 1.2) -> torch.Tensor:
    """The faint grid that a person lasso-selects to brush points: (n * n, 2) in [-extent, extent]²."""
    axis = torch.linspace(-extent, extent, n)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def selection_indices(entries, n: int) -> list[int]:
    """The grid indices of a Plotly selection's ``points`` on :func:`brush_grid` (``n`` dots): every entry a dict with
    a whole ``point_index`` in 0 .. n - 1. A selection the grid could not have made (hand-made: an index that is null,
    infinite, a list or text, an entry that is not a dict, more entries than dots) gets one sentence (``ValueError``);
    the length is checked before any entry is looked at."""
    if not isinstance(entries, list | tuple):
        raise ValueError(_not_the_grids("its points are not a list"))
    if len(entries) > n:
        raise ValueError(_not_the_grids(f"{len(entries):,} points where the grid has {n:,}"))
    out = []
    for k, entry in enumerate(entries):
        i = entry.get("point_index") if isinstance(entry, dict) else None
        if not _whole(i) or not 0 <= i < n:
            raise ValueError(_not_the_grids(f"point {k + 1} has no whole point_index from 0 to {n - 1}"))
        out.append(i)
    return out


def _not_the_grids(why: str) -> str:
    return f"The brush selection is not one the grid could have made ({why}): draw a new lasso or box on the grid."


def brushed(indices, grid: torch.Tensor | None = None) -> torch.Tensor:
    """The grid points at ``indices`` (what a lasso or box selection on :func:`brush_grid` returns), each once, in
    grid order; indices outside the grid are skipped. (K, 2). An index that is not a whole number (null, infinite,
    text, a list) gets one sentence, not ``int()``'s message."""
    grid = brush_grid() if grid is None else grid
    indices = list(indices)
    if any(not _whole(i) for i in indices):
        raise ValueError(_not_the_grids("an index is not a whole number"))
    idx = sorted({int(i) for i in indices if 0 <= i < len(grid)})
    return check_points(grid[idx].numpy() if idx else np.zeros((0, 2)))


def _whole(i) -> bool:
    return isinstance(i, int | np.integer) and not isinstance(i, bool)


def add_to_text(text: str, points: torch.Tensor) -> str:
    """``text`` with ``points`` (K, 2) added one per line as ``x, y``, leaving out those it already holds (the brush
    adds to the typed points, and a dot brushed twice counts once). Text that does not parse is kept as it is."""
    try:
        have = {(round(x, 4), round(y, 4)) for x, y in parse_points(text).tolist()} if text.strip() else set()
    except ValueError:
        have = set()
    lines = []
    for x, y in np.round(np.asarray(points, dtype=np.float64), 4).tolist():
        if (x, y) not in have:
            have.add((x, y))
            lines.append(f"{x:g}, {y:g}")
    if not lines:
        return text
    return text.rstrip("\n") + ("\n" if text.strip() else "") + "\n".join(lines)
