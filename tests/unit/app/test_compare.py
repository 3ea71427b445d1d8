"""Compare on the Reverse trajectory page: the kept runs (model.images.figure.keep_recent, frame_near_t), two runs side by
side, and the t_start sweep; pure pieces directly, the page through AppTest on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import app_test
from fakes import network_passes
from streamlit.testing.v1 import AppTest

from app.charts import reverse
from app.compute import models
from model.images import figure

torch.set_num_threads(1)


def _run(ts: tuple[int, ...], res: int = 8, psnr: bool = True) -> figure.Run:
    blank = np.zeros((res, res, 3), np.uint8)
    frames = tuple(
        figure.Frame(index=i, num_steps=len(ts), t=t, x_t=blank, eps_hat=blank, x0_hat=blank) for i, t in enumerate(ts)
    )
    return figure.Run(
        ts=ts,
        t_prevs=(*ts[1:], -1),
        eps_rms=tuple(1.0 for _ in ts),
        psnr=tuple(10.0 + i for i in range(len(ts))) if psnr else None,
        kept=tuple(range(len(ts))),
        frames=frames,
        final=blank,
        seconds=0.1,
    )


def test_keep_recent_counts_and_bytes():
    old = [_run((300, 200, 100, 0)) for _ in range(5)]
    new = _run((500, 0))
    kept = figure.keep_recent(old, new, max_runs=4)
    assert kept[0] is new and kept[1:] == old[:3]  # newest first, at most 4
    one = old[0].nbytes
    assert figure.keep_recent(old, new, max_runs=9, max_bytes=new.nbytes + 2 * one) == [new, old[0], old[1]]
    assert figure.keep_recent(old, new, max_bytes=1) == [new]  # the new run always stays
    assert figure.keep_recent([new, *old], new, max_runs=2) == [new, old[0]]  # not twice


def test_frame_near_t_picks_the_closest_stored_step():
    run = _run((900, 600, 300, 0))
    assert figure.frame_near_t(run, 620).t == 600
    assert figure.frame_near_t(run, 999).index == 0 and figure.frame_near_t(run, -5).t == 0
    assert figure.frame_near_t(run, 450).t == 600  # a tie goes to the earlier step


def test_compare_and_sweep_charts():
    fig = reverse.compare_chart({"A": _run((900, 0)), "B": _run((500, 250, 0))}, 300)
    assert [tr.name for tr in fig.data] == ["A", "B"] and fig.layout.xaxis.autorange == "reversed"
    assert "PSNR" in fig.layout.yaxis.title.text
    noise = reverse.compare_chart({"A": _run((900, 0), psnr=False), "B": _run((500, 0))}, 300)
    assert "ε̂" in noise.layout.yaxis.title.text  # PSNR only when both runs have it
    sw = reverse.sweep_psnr_chart([100, 200], [30.0, float("inf")])
    assert list(sw.data[0].y) == [30.0, None]


def _app(tiny_model_dir) -> AppTest:
    return app_test(tiny_model_dir, page="views/trajectory.py", timeout=300)


def test_two_runs_side_by_side(tiny_model_dir):
    at = _app(tiny_model_dir)
    at.run()
    at.slider(key="traj_steps").set_value(10)
    at.button(key="traj_go").click().run()
    assert not at.exception
    assert len(at.session_state["traj_history"]) == 1
    assert not any(s.key == "cmp_a" for s in at.selectbox)  # one run: nothing to compare yet
    at.radio(key="traj_sampler").set_value("DDPM")
    at.button(key="traj_go").click().run()
    at.button(key="traj_go").click().run()  # the same settings again: not kept twice
    assert not at.exception, [e.value for e in at.exception]
    history = at.session_state["traj_history"]
    assert len(history) == 2 and history[0]["settings"].sampler == "ddpm" and history[1]["settings"].sampler == "ddim"
    assert at.selectbox(key="cmp_a").value == history[1]["run_id"]
    assert at.selectbox(key="cmp_b").value == history[0]["run_id"]
    at.slider(key="cmp_t").set_value(150).run()
    caps = [c for img in at.image for c in img.captions]
    assert sum(c.startswith("x_t, t = ") for c in caps) >= 3  # the scrub row and both compared runs
    assert any(m.value.startswith("**A**: step") for m in at.markdown)
    assert any(m.value.startswith("**B**: step") for m in at.markdown)


def test_t_start_sweep_rows_and_cache(tiny_model_dir):

    at = _app(tiny_model_dir)
    at.run()
    at.slider(key="traj_steps").set_value(10).run()
    unet = models.get_model(str(tiny_model_dir)).unet
    with network_passes(unet) as calls:
        at.button(key="traj_sweep_go").click().run()
        assert not at.exception, [e.value for e in at.exception]
        _key, rows = at.session_state["traj_sweep"]
        assert [r["t_start"] for r in rows] == list(range(100, 1000, 100))
        assert all(r["steps"] == 10 and np.isfinite(r["psnr"]) for r in rows)
        assert rows[0]["final"].shape == (32, 32, 3)
        assert len(calls) == 90  # 9 starts x 10 steps
        calls.clear()
        at.button(key="traj_sweep_go").click().run()  # the same settings: from the cache
        assert calls == []
    assert any("t_start" in c.value for c in at.markdown)


def test_the_choice_survives_a_shorter_history(tiny_model_dir):
    at = _app(tiny_model_dir)
    at.run()
    at.slider(key="traj_steps").set_value(10)
    for sampler in ("DDIM", "DDPM"):
        at.radio(key="traj_sampler").set_value(sampler)
        at.button(key="traj_go").click().run()
    at.slider(key="traj_t_start").set_value(200)
    at.button(key="traj_go").click().run()
    oldest = at.session_state["traj_history"][2]["run_id"]
    at.selectbox(key="cmp_a").set_value(oldest).run()
    assert at.selectbox(key="cmp_a").value == oldest
    at.session_state["traj_history"] = at.session_state["traj_history"][:2]  # as when the memory cap drops runs
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="cmp_a").value in [h["run_id"] for h in at.session_state["traj_history"]]


def _shown_runs(at) -> tuple[str, str, str, str]:
    """(Run A's choice, Run B's choice, as the dropdowns show them; the chart's A and B, as the legend names them)."""
    a, b = at.selectbox(key="cmp_a"), at.selectbox(key="cmp_b")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    names = next(n for spec in specs if (n := [tr.get("name", "") for tr in spec["data"]])[0].startswith("A: "))
    return a.options[a.index], b.options[b.index], names[0][3:], names[1][3:]


def test_a_third_run_becomes_run_b_and_the_dropdowns_agree_with_the_chart(tiny_model_dir):
    """Issue 26: after a third run the dropdowns said DDIM 50 / DDPM 50 while the panels and the legend showed
    DDPM 50 / DDIM 30 (the choices were positions in the history, and a new run goes first). Issue 36: A and B then
    stayed on the two older runs; the newest run is B, the B before it A, and the page says runs go on reload."""
    at = _app(tiny_model_dir)
    at.run()
    for sampler, steps in (("DDIM", 20), ("DDPM", 20), ("DDIM", 10)):
        at.radio(key="traj_sampler").set_value(sampler)
        at.slider(key="traj_steps").set_value(steps)
        at.button(key="traj_go").click().run()
        assert not at.exception, [e.value for e in at.exception]
        if sampler == "DDPM":  # two runs: A is the first (DDIM), B the second (DDPM)
            before = _shown_runs(at)
            assert before[0].startswith("DDIM η = 0, 20 steps") and before[1].startswith("DDPM, 20 steps"), before
            assert before[:2] == before[2:]
    after = _shown_runs(at)
    assert after[0] == before[1] and after[1].startswith("DDIM η = 0, 10 steps"), after  # the newest is B
    assert after[:2] == after[2:]  # the dropdowns and the legend (and so the panels) agree
    assert any(m.value.startswith("**B**: step") and "of 10" in m.value for m in at.markdown)
    assert any("reloading the page" in c.value for c in at.caption)
