"""model.images.slide.slide_image: the 16:9 slide (title line, the paper's notation, transposed layout), pure PIL;
and the command line's --slide."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from model.cli import figure as figure_cli
from model.images import figure, labels, slide

RES = 8


def _frames(n: int) -> list[figure.Frame]:
    """n steps whose three panels are each one flat, distinct colour: (step, panel) can be found in the slide."""

    def flat(k: int, p: int) -> np.ndarray:
        return np.full((RES, RES, 3), (40 + 20 * k, 60 + 60 * p, 200 - 15 * k), np.uint8)

    return [
        figure.Frame(index=k, num_steps=n, t=999 - 100 * k, x_t=flat(k, 0), eps_hat=flat(k, 1), x0_hat=flat(k, 2))
        for k in range(n)
    ]


def _centroid(img: Image.Image, colour) -> tuple[float, float, int]:
    arr = np.asarray(img)
    ys, xs = np.nonzero((arr == np.array(colour, np.uint8)).all(axis=2))
    return float(xs.mean()) if len(xs) else -1.0, float(ys.mean()) if len(ys) else -1.0, len(xs)


@pytest.mark.parametrize("transposed", [False, True])
def test_slide_is_16_9_with_every_panel_in_place(transposed):
    frames = _frames(5)
    img = slide.slide_image(frames, "DDIM η = 0, 5 steps from t = 999, seed 0", rows=5, transposed=transposed)
    assert img.size == (1920, 1080) and img.mode == "RGB"
    centres = {}
    for k, f in enumerate(frames):
        for p, arr in enumerate(f.panels()):
            x, y, n = _centroid(img, arr[0, 0])
            assert n > 100 * 100, (k, p, n)  # a big panel, not a thumbnail
            centres[k, p] = (x, y)
    # blog layout: steps go down, panels go right; transposed: steps go right, panels go down
    step_axis, panel_axis = (0, 1) if transposed else (1, 0)
    assert all(centres[k + 1, 0][step_axis] > centres[k, 0][step_axis] for k in range(4))
    assert all(centres[0, p + 1][panel_axis] > centres[0, p][panel_axis] for p in range(2))
    # a title line: ink in the top band, above every panel
    top = np.asarray(img)[: int(min(y for _, y in centres.values())) - 200]
    assert (top < 100).all(axis=2).sum() > 500


def test_slide_title_changes_the_picture_and_labels_use_the_notation():
    frames = _frames(3)
    a = np.asarray(slide.slide_image(frames, "DDIM, 3 steps", rows=3))
    b = np.asarray(slide.slide_image(frames, "DDPM, 3 steps, a longer title line", rows=3))
    assert (a[:150] != b[:150]).any() and (a[150:] == b[150:]).all()  # only the title band differs
    font, unicode_ok = labels.unicode_font(32)
    if not unicode_ok:
        pytest.skip("no Unicode TrueType font on this machine")
    for label in labels.LABELS:  # each label draws real glyphs, not missing-glyph boxes
        box = Image.new("L", (120, 60), 255)
        ImageDraw.Draw(box).text((10, 10), label, font=font, fill=0)
        tofu = Image.new("L", (120, 60), 255)
        ImageDraw.Draw(tofu).text((10, 10), "\uffff" * len(label), font=font, fill=0)
        assert np.asarray(box).min() < 128 and not np.array_equal(np.asarray(box), np.asarray(tofu))
    assert labels.LABELS == ("x_t", "ε̂", "x̂₀")  # spelled as on the pages and in the glossary (issue 26)


def test_slide_without_a_unicode_font_falls_back_to_ascii(monkeypatch):
    monkeypatch.setattr(labels, "_unicode_font_path", lambda: None)
    img = slide.slide_image(_frames(2), "fallback", rows=2, size=(1280, 720))
    assert img.size == (1280, 720)


def test_too_many_steps_for_a_slide_is_a_clear_error():
    with pytest.raises(ValueError, match="choose fewer rows"):
        slide.slide_image(_frames(3), "x", indices=[0, 1, 2] * 60)


def test_cli_writes_a_slide(tiny_model_dir, tmp_path, capsys):
    from conftest import ROOT

    out, slide = tmp_path / "grid.png", tmp_path / "slide.png"
    code = figure_cli.main(
        [str(ROOT / "assets" / "astronaut.jpg"), "--model", str(tiny_model_dir), "--res", "32", "--steps", "6",
         "--t-start", "300", "--out", str(out), "--slide", str(slide), "--transpose"]
    )  # fmt: skip
    assert code == 0
    with Image.open(slide) as im:
        assert im.size == (1920, 1080)
    printed = capsys.readouterr().out
    assert "slide.png  1920x1080 px  (slide, 6 steps as columns)" in printed
