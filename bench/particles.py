"""Server-side time of a slider move on the Particle lab and the Sampler race, and the MMD yardsticks.

    .venv/bin/python bench/particles.py [--res 64] [--repeats 15] [--threads N] [--json bench/out/particles.json]

Budget (issue 27): each view responds to a slider within 300 ms at 64 px. The particle pages draw points, not
pictures, so ``--res`` (the sidebar's working resolution, 64 px by default) changes nothing but the sidebar's own
image; it is set as the app would have it. Every repeat uses a new t (or step count), so nothing comes from a cache.
Medians and 90th percentiles over the repeats:

* **exact field + figure**: ``model.particles.lab.exact_field`` (the exact denoiser's drift on the 17 x 17 grid, the
  noised particles) and the Plotly figure serialised to JSON (what a t move on section 1 costs);
* **ODE + SDE paths + figure**: ``lab.exact_paths``, DDIM and DDPM paths of 48 particles (25 steps) through the
  trajectory generator;
* **lab page rerun, t move / steps move**: the whole page script through ``streamlit.testing.v1.AppTest``
  (an upper bound on a real server's script run);
* **race page rerun, paths slider**: the Sampler race's "Paths at" slider once its race is cached.

It also prints the MMD^2 yardsticks quoted in ``model/particles/metrics.py`` (two draws of moons, blurred moons,
pure noise) and one live training's seconds. The load average is printed beside the figures; measure on a quiet
machine (about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from harness import timing
from model.diffusion.schedule import make_schedule
from model.particles import data, lab, metrics, mlp, paths
from model.serving import process

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app" / "streamlit_app.py")
BUDGET_MS = 300.0


def _timed(fn, args_list) -> list[float]:
    out = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def bench_math(repeats: int) -> dict[str, list[float]]:
    from app.charts import particles as pp

    sched = make_schedule("linear")
    pts = data.make_dataset("moons", 300, 0)

    def field(t: int) -> None:
        f = lab.exact_field(sched, pts, t, flow_matching=False)
        pp.field_figure(pts.numpy(), f.grid.numpy(), f.field.numpy(), f"t = {t}", noisy=f.noisy.numpy()).to_json()

    def path(steps: int) -> None:
        groups = lab.exact_paths(sched, pts, steps, seed=0, flow_matching=False)
        pp.paths_figure(pts.numpy(), {k: v.numpy() for k, v in groups.items()}, "paths").to_json()

    ts = [(round(i * 999 / max(repeats - 1, 1)),) for i in range(repeats)]
    return {
        "exact field + figure (t move)": _timed(field, ts),
        "ODE + SDE paths + figure (25 steps)": _timed(path, [(25,)] * repeats),
    }


def _app(page: str, res: int, **state):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["resolution"] = res
    for k, v in state.items():
        at.session_state[k] = v
    at.switch_page(page)
    at.run()
    if at.exception or at.error:
        raise SystemExit(f"error: {page} did not render: {[e.value for e in [*at.exception, *at.error]]}")
    return at


def _page_moves(at, key: str, values: list) -> list[float]:
    ms = []
    for v in values:
        (at.select_slider(key=key) if key == "race_paths" else at.slider(key=key)).set_value(v)
        t0 = time.perf_counter()
        at.run()
        ms.append((time.perf_counter() - t0) * 1000)
        if at.exception:
            raise SystemExit(f"error: the page failed at {key} = {v}: {at.exception[0].value}")
    return ms


def bench_pages(res: int, repeats: int) -> dict[str, list[float]]:
    page = _app("views/particles.py", res)
    ts = [(37 + round(i * 960 / max(repeats - 1, 1))) % 1000 for i in range(repeats)]
    out = {"lab page rerun, t move": _page_moves(page, "pl_t", ts)}
    out["lab page rerun, steps move"] = _page_moves(page, "pl_steps", [5 + (7 * i) % 90 for i in range(repeats)])
    race = _app("views/race.py", res, race_steps=[4, 8, 16])
    out["race page rerun, paths slider"] = _page_moves(race, "race_paths", [[4, 8, 16][i % 3] for i in range(repeats)])
    return out


def yardsticks() -> dict[str, float]:
    ref = data.make_dataset("moons", 1500, 1)
    other = data.make_dataset("moons", 1500, 2)
    g = torch.Generator().manual_seed(3)
    t0 = time.perf_counter()
    pts = data.make_dataset("moons", 1000, 0)
    net = mlp.train_to_end(pts, make_schedule("linear"), mlp.TrainConfig(kind="flow", steps=1500)).net
    train_s = time.perf_counter() - t0
    from model.particles import flow

    learned = flow.flow_paths(mlp.as_velocity_model(net), paths.start_noise(1500, 7), 16)[-1]
    return {
        "MMD² two draws of moons": metrics.mmd(other, ref),
        "MMD² moons blurred by N(0, 0.1²)": metrics.mmd(other + 0.1 * torch.randn(other.shape, generator=g), ref),
        "MMD² pure noise vs moons": metrics.mmd(paths.start_noise(1500, 4), ref),
        "MMD² trained flow MLP, 16 Euler steps": metrics.mmd(learned, ref),
        "seconds: one training, 1500 steps": train_s,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    timing.add_common_args(ap)
    a = ap.parse_args(argv)

    timing.quiet_streamlit()
    process.configure_allocator()  # the app's allocator setting and thread count
    threads = process.configure_threads(a.threads)
    results = bench_math(a.repeats)
    results.update(bench_pages(a.res, a.repeats))
    sticks = yardsticks()
    load = os.getloadavg()
    print(
        f"Particle lab and Sampler race, slider moves ({a.res} px in the sidebar), {torch.get_num_threads()} torch "
        f"thread(s) (configured {threads}), {a.repeats} repeats, load average {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f} on {os.cpu_count()} CPUs"
    )
    summary = timing.print_table(
        results,
        40,
        lambda name, med: "" if "rerun" not in name else ("  (<= 300 ms)" if med <= BUDGET_MS else "  (over 300 ms)"),
    )
    for name, value in sticks.items():
        print(f"  {name:40s}{value:10.4f}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"res": a.res, "load": load, "times": summary, "yardsticks": sticks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
