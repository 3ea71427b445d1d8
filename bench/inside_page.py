"""Server-side time of one t move on the "Inside the network" page.

    .venv/bin/python bench/inside_page.py [--model DIR_OR_HUB_ID] [--res 64] [--repeats 15] [--threads N]
                                          [--json bench/out/inside_page.json]

Budget (issue 16): for the bundled model at 64 px, a t move on this page (forward pass, captures,
pictures) takes at most 300 ms server-side. Every repeat uses a new t, so nothing comes from a cache.
Four figures, medians and 90th percentiles over the repeats:

* **forward pass alone**: ``LoadedModel.raw`` on x_t, what the Denoise page pays;
* **recorded pass**: :func:`model.nets.probe.capture` (the same pass with forward hooks, every ResNet
  block recomputed stage by stage, every tensor turned into uint8 pictures of its 4 most active channels);
* **inside_pass**: the page's cached function uncached (noise, recorded pass, ε̂ and x_t pictures, the
  embeddings);
* **page rerun**: the whole page script after a t move, through ``streamlit.testing.v1.AppTest`` (the
  recorded pass plus the diagram, PNG encoding of every picture and the Plotly figures; AppTest adds
  a little of its own work, so this is an upper bound on a real server's script run).

The budget is judged on the page rerun. The numbers depend on what else runs on the machine: the
load average is printed beside them; measure on a quiet machine.
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
from model.nets import probe
from model.nets.network import load_model
from model.serving import process

ROOT = Path(__file__).resolve().parent.parent

BUDGET_MS = 300.0
APP = str(ROOT / "app" / "streamlit_app.py")


def timesteps(repeats: int, T: int, offset: int) -> list[int]:
    """``repeats`` distinct t spread over 0 … T-1 (shifted by ``offset`` so that each figure gets its own t)."""
    return [(offset + round(i * (T - 1) / max(repeats, 1))) % T for i in range(repeats)]


def bench_passes(model, res: int, repeats: int) -> dict[str, list[float]]:
    from app.compute import inside as backend_inside
    from model.images.tensors import load_image

    x0 = load_image((ROOT / "assets" / "astronaut.jpg").read_bytes(), res)  # (1, 3, R, R); converted if grey
    shape = (1, model.channels, res, res)
    T = model.schedule.T
    y = model.labels(None, 1)
    out: dict[str, list[float]] = {"forward pass alone": [], "recorded pass": [], "inside_pass": []}
    g = torch.Generator().manual_seed(0)
    for _ in range(2):  # warm-up
        probe.capture(model.unet, torch.randn(shape, generator=g), 500, y)
    for i, t in enumerate(timesteps(repeats, T, 1)):
        x_t = torch.randn(shape, generator=g)
        t0 = time.perf_counter()
        model.raw(x_t, torch.tensor([t]), None)
        t1 = time.perf_counter()
        probe.capture(model.unet, x_t, t, y)
        t2 = time.perf_counter()
        backend_inside.inside_pass("bench", res, "bench", t, i, None, x0, model)  # new (t, seed): a cache miss
        t3 = time.perf_counter()
        out["forward pass alone"].append((t1 - t0) * 1000)
        out["recorded pass"].append((t2 - t1) * 1000)
        out["inside_pass"].append((t3 - t2) * 1000)
    return out


def bench_page(source: str | None, res: int, repeats: int, T: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    if source is not None:
        at.session_state["model_source"] = source
    at.session_state["resolution"] = res
    at.switch_page("views/inside.py")
    at.run()  # first run: model, time table, diagram
    if at.exception or at.error:
        raise SystemExit(f"error: the page did not render: {[e.value for e in [*at.exception, *at.error]]}")
    ms = []
    for t in timesteps(repeats, T, 2):
        at.slider(key="ins_t").set_value(t)
        t0 = time.perf_counter()
        at.run()
        ms.append((time.perf_counter() - t0) * 1000)
        if at.exception:
            raise SystemExit(f"error: the page failed at t = {t}: {at.exception[0].value}")
    return ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a folder or Hub id (default: the bundled photo model)")
    timing.add_common_args(ap)
    a = ap.parse_args(argv)

    timing.quiet_streamlit()
    process.configure_allocator()  # the app's allocator setting and thread count
    threads = process.configure_threads(a.threads)
    model = load_model(a.model)
    results = bench_passes(model, a.res, a.repeats)
    results["page rerun (AppTest)"] = bench_page(a.model, a.res, a.repeats, model.schedule.T)
    load = os.getloadavg()

    print(
        f"Inside the network, one t move at {a.res} px: {model.source}, "
        f"{torch.get_num_threads()} torch thread(s) (configured {threads}), {a.repeats} repeats, "
        f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPUs"
    )
    summary = timing.print_table(results, 36)
    page = summary["page rerun (AppTest)"]["median_ms"]
    verdict = "met" if page <= BUDGET_MS else "NOT met"
    print(f"budget: page rerun median {page:.1f} ms vs {BUDGET_MS:.0f} ms: {verdict}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(
            json.dumps(
                {
                    "model": model.source,
                    "resolution": a.res,
                    "threads": torch.get_num_threads(),
                    "repeats": a.repeats,
                    "loadavg": load,
                    "budget_ms": BUDGET_MS,
                    "results": summary,
                },
                indent=2,
            )
        )
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
