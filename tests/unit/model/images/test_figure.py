"""model/images/figure.py: the grid PNG, the GIF, the compact Run, and the command line."""

from __future__ import annotations

import ast
import io
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, png_bytes
from PIL import Image

from model.cli import figure as figure_cli
from model.diffusion.schedule import make_schedule
from model.diffusion.trajectory import make_timesteps, oracle_eps_model, sample_trajectory
from model.images import figure

torch.set_num_threads(1)  # the machine is shared; one thread is much faster under contention
SCHED = make_schedule("linear")


def _bands(mask: np.ndarray) -> int:
    """Number of runs of True in a 1-D mask."""
    m = mask.astype(np.int8)
    return int(((m[1:] - m[:-1]) == 1).sum() + m[0])


def _count_cells(img: Image.Image) -> tuple[int, int]:
    """(rows, columns) of picture cells, found from the pixels: lines that are not mostly background."""
    arr = np.asarray(img.convert("RGB"))[figure.HEADER_PX :, figure.LABEL_PX :]
    ink = (arr != np.array(figure.BACKGROUND, dtype=np.uint8)).any(axis=2)
    return _bands(ink.mean(axis=1) > 0.5), _bands(ink.mean(axis=0) > 0.5)


def _records(n=6, res=16, t_start=999):
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((1, 3, res, res), generator=g) * 2 - 1
    x_start, g = figure.start_sample(SCHED, x0, t_start, 0)
    recs = list(
        sample_trajectory(oracle_eps_model(SCHED, x0), SCHED, x_start, make_timesteps(t_start, n), "ddpm", 0.0, g)
    )
    return recs, x0


# --- pure helpers ------------------------------------------------------------------------


def test_pick_rows_and_every_kth():
    assert figure.pick_rows(50, 10)[0] == 0 and figure.pick_rows(50, 10)[-1] == 49
    assert len(figure.pick_rows(50, 10)) == 10
    assert figure.pick_rows(3, 10) == [0, 1, 2]
    assert figure.pick_rows(7, 1) == [6]
    assert figure.every_kth(10, 3) == [0, 3, 6, 9]
    assert figure.every_kth(11, 3) == [0, 3, 6, 9, 10]
    assert figure.every_kth(1, 5) == [0]


def test_grid_from_records_has_rows_by_three_cells():
    recs, _ = _records(n=6)
    img = figure.grid_image(recs, rows=4)
    assert img.size == figure.grid_size(4, 16)
    assert _count_cells(img) == (4, 3)
    # the x0_hat cell of the last row is that step's x0_hat, upscaled with nearest-neighbour
    x, y = figure.cell_origin(3, 2, 16)
    c = figure.cell_px(16)
    cell = np.asarray(img)[y : y + c, x : x + c]
    expected = figure.frame_from_record(recs[-1]).x0_hat.repeat(c // 16, 0).repeat(c // 16, 1)
    assert np.array_equal(cell, expected)


def test_record_run_keeps_every_step_and_numbers():
    recs, x0 = _records(n=5)
    run = figure.record_run(iter(recs), x0)
    assert run.num_steps == 5 and run.kept == (0, 1, 2, 3, 4)
    assert run.ts == (999, 749, 500, 250, 0) and run.t_prevs == (749, 500, 250, 0, -1)
    assert run.psnr is not None and min(run.psnr) > 40  # the oracle knows x_0
    assert run.frames[2].x_t.dtype == np.uint8 and run.final.shape == (16, 16, 3)


def test_record_run_bounds_memory_keeps_last():
    recs, _ = _records(n=9)
    per_step = 3 * 16 * 16 * 3
    run = figure.record_run(recs, None, max_bytes=3 * per_step)
    assert run.psnr is None
    assert run.kept == (0, 3, 6, 8)
    assert len(run.frames) == 4 and run.frames[-1].index == 8


def test_gif_has_one_frame_per_step():
    recs, _ = _records(n=7)
    with Image.open(io.BytesIO(figure.gif_bytes(recs))) as im:
        assert im.n_frames == 7
        assert im.size == figure.grid_size(1, 16)
    with Image.open(io.BytesIO(figure.gif_bytes(recs, max_frames=3))) as im:
        assert im.n_frames == 3


def test_model_package_has_no_ui_imports():
    tree = ast.parse((ROOT / "model" / "figure.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"streamlit", "plotly", "app"}


# --- the command line ----------------------------------------------------------------------


def test_cli_writes_png_and_gif(tiny_model_dir, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((50, 40)))
    out, gif = tmp_path / "fig.png", tmp_path / "anim.gif"
    rc = figure_cli.main(
        [
            str(photo),
            "--t-start",
            "999",
            "--steps",
            "6",
            "--sampler",
            "ddim",
            "--rows",
            "4",
            "--res",
            "32",
            "--seed",
            "0",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(out),
            "--gif",
            str(gif),
        ]
    )
    assert rc == 0
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == figure.grid_size(4, 32)
        assert _count_cells(im) == (4, 3)
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 6
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(out)) and lines[1].startswith(str(gif))
    w, h = figure.grid_size(4, 32)
    assert f"{w}x{h} px" in lines[0]


def test_cli_from_noise_ddpm(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "gen.png"
    rc = figure_cli.main(
        ["noise", "--steps", "3", "--sampler", "ddpm", "--res", "32", "--model", str(tiny_model_dir), "--out", str(out)]
    )
    assert rc == 0
    with Image.open(out) as im:
        assert _count_cells(im) == (3, 3)


def test_cli_bad_image_file(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not a picture")
    rc = figure_cli.main([str(bad), "--res", "32", "--model", str(tiny_model_dir), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.startswith("error: ") and "notes.png" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_cli_bad_model(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes())
    rc = figure_cli.main(
        [str(photo), "--res", "32", "--model", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "x.png")]
    )
    assert rc == 2 and "error:" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
def test_cli_missing_image_exit_code_2(tmp_path, monkeypatch, capsys):
    """The module's entry point (``python -m model.figure``): exit code 2, one clear line, no traceback."""
    monkeypatch.setattr(sys, "argv", ["model.figure", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("model.figure", run_name="__main__")
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("error: ") and "missing.jpg" in err and "Check the path" in err
    assert "Traceback" not in err
    assert not Path(tmp_path / "x.png").exists()
