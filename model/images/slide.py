"""The slide-ready figure: a 16:9 picture of the step grid with a title line stating the settings, the column labels in
the paper's notation (x_t, ε̂, x̂₀) and, on request, steps as columns. Pure Pillow; the panels are the
:class:`~model.images.figure.Frame` s of a run (:mod:`model.images.figure`)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from model.diffusion.trajectory import StepRecord
from model.images.figure import BACKGROUND, INK, Frame, as_frames, pick_rows, upscale
from model.images.labels import panel_labels, unicode_font

SLIDE_SIZE = (1920, 1080)  # 16:9 at 1080p


def slide_image(
    steps: Sequence[StepRecord | Frame],
    title: str,
    rows: int = 6,
    transposed: bool = False,
    size: tuple[int, int] = SLIDE_SIZE,
    indices: Sequence[int] | None = None,
) -> Image.Image:
    """The step grid as a 16:9 slide: a title line stating the settings, panels labelled x_t, ε̂, x̂₀.

    :param steps: StepRecords or Frames in step order. :param rows: evenly spaced steps to show (first and last
        always), unless ``indices`` (positions in ``steps``) is given.
    :param transposed: False: one row per step, columns x_t | ε̂ | x̂₀ (the blog figure). True: one column per
        step (t decreasing to the right), rows x_t, ε̂, x̂₀: wide, which suits a slide.
    :returns: an RGB image of exactly ``size`` px (default 1920 × 1080), white background, panels upscaled
        with nearest-neighbour and centred.
    """
    frames = as_frames(steps)
    if not frames:
        raise ValueError("no steps to draw")
    idx = list(indices) if indices is not None else pick_rows(len(frames), rows)
    W, H = size
    unit = max(10, H // 54)  # 20 px at 1080p
    title_font, unicode_ok = unicode_font(round(unit * 2.2))
    label_font, _ = unicode_font(round(unit * 1.6))
    small_font, _ = unicode_font(round(unit * 1.1))
    names = panel_labels(unicode_ok)
    img = Image.new("RGB", (W, H), BACKGROUND)
    draw = ImageDraw.Draw(img)
    margin, gap = 2 * unit, max(4, unit // 2)
    title_h = round(unit * 4)
    draw.text((margin, margin + title_h // 3), title, fill=INK, font=title_font, anchor="lm")

    n_cols, n_rows = (len(idx), 3) if transposed else (3, len(idx))
    side_w = round(unit * (4 if transposed else 7))  # row labels: panel names, or "t = ..." and "step k"
    head_h = round(unit * (4 if transposed else 2.6))  # column labels: "t = ..." and "step k", or panel names
    top = margin + title_h
    avail_w = W - 2 * margin - side_w
    avail_h = H - top - margin - head_h
    cell = int(min((avail_w - gap * (n_cols - 1)) / n_cols, (avail_h - gap * (n_rows - 1)) / n_rows))
    if cell < 8:
        raise ValueError(f"{len(idx)} steps do not fit on a {W}x{H} slide; choose fewer rows")
    grid_w = side_w + n_cols * cell + (n_cols - 1) * gap
    grid_h = head_h + n_rows * cell + (n_rows - 1) * gap
    x0 = (W - grid_w) // 2 + side_w
    y0 = top + (H - top - margin - grid_h) // 2 + head_h

    def origin(r: int, c: int) -> tuple[int, int]:
        return x0 + c * (cell + gap), y0 + r * (cell + gap)

    def step_label(x: int, y: int, f: Frame) -> None:
        draw.text((x, y - unit * 0.8), f"t = {f.t}", fill=INK, font=label_font, anchor="mm")
        draw.text((x, y + unit * 0.9), f"step {f.index + 1}", fill=(110, 110, 110), font=small_font, anchor="mm")

    for k, i in enumerate(idx):
        f = frames[i]
        for p, arr in enumerate(f.panels()):
            r, c = (p, k) if transposed else (k, p)
            img.paste(upscale(arr, cell), origin(r, c))
        if transposed:
            x, _ = origin(0, k)
            step_label(x + cell // 2, y0 - head_h // 2, f)
        else:
            _, y = origin(k, 0)
            step_label(x0 - side_w // 2, y + cell // 2, f)
    for p, name in enumerate(names):
        if transposed:
            _, y = origin(p, 0)
            draw.text((x0 - side_w // 2, y + cell // 2), name, fill=INK, font=label_font, anchor="mm")
        else:
            x, _ = origin(0, p)
            draw.text((x + cell // 2, y0 - head_h // 2), name, fill=INK, font=label_font, anchor="mm")
    return img
