"""How long the frequency view (issue 27) takes to follow a slider, server-side.

    .venv/bin/python bench/frequency.py [--model DIR_OR_HUB_ID] [--res 64] [--repeats 15] [--steps 10]
                                        [--threads N] [--json bench/out/frequency.json]

Budget (issue 27): at 64 px the view responds to a slider change within 300 ms. Every repeat uses a new t (or
step), so nothing of x_t's spectrum or the chart comes from a cache. Figures, medians and 90th percentiles:

* **view alone, Forward**: what the section adds per t move: the spectrum of x_t, f_max, the chart built and
  serialised to JSON (what ``st.plotly_chart`` sends); the photo's spectrum is computed once per photo;
* **view alone, Reverse**: the same per step move: the spectrum of x̂₀ from the stored uint8 panel, the chart;
* **Forward page, t move, view on / off**: the whole page script after a t move, through
  ``streamlit.testing.v1.AppTest`` (the pictures, the schedule chart and, when on, the frequency view; AppTest
  runs the whole script where a browser reruns only the page's fragment, so this is an upper bound);
* **Reverse page, step move, view on**: the Reverse trajectory page after a step move on a finished run of
  ``--steps`` steps (the run itself is made once, before the clock).

The budget is judged on the page reruns with the view on. The numbers depend on what else runs on the machine:
the load average is printed beside them; measure on a quiet machine. A full run (15 repeats) takes about a minute
on a quiet machine, most of it loading the model and making the reverse run.
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
from model.diffusion.forward import q_sample
from model.diffusion.schedule import make_schedule
from model.images import spectrum
from model.images.tensors import load_image, tensor_to_uint8
from model.serving import process

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app" / "streamlit_app.py")
BUDGET_MS = 300.0


def timesteps(repeats: int, T: int, offset: int) -> list[int]:
    """``repeats`` distinct t spread over 1 … T-1 (shifted by ``offset``, so that each figure gets its own t)."""
    return [1 + (offset + round(i * (T - 2) / max(repeats, 1))) % (T - 1) for i in range(repeats)]


def bench_view(res: int, repeats: int) -> dict[str, list[float]]:
    """The section's own work per slider move, without Streamlit."""
    from app.charts import frequency as plots_frequency

    schedule = make_schedule("linear")
    x0 = load_image((ROOT / "assets" / "astronaut.jpg").read_bytes(), res)  # (1, 3, R, R)
    radius, power0 = spectrum.radial_power_spectrum(x0)  # once per photo (cached in the app)
    limits = plots_frequency.y_range(power0, float(spectrum.noise_floor(schedule, 0)))
    out: dict[str, list[float]] = {"view alone, Forward": [], "view alone, Reverse": []}
    g = torch.Generator().manual_seed(0)
    for i, t in enumerate([500, 500, *timesteps(repeats, schedule.T, 3)]):  # two warm-up moves first
        x_t, _ = q_sample(schedule, x0, t, generator=g)  # the page has it already (cached)
        panel = tensor_to_uint8(x_t.clamp(-1, 1))  # a stand-in for a stored x0_hat panel
        t0 = time.perf_counter()
        view = spectrum.spectrum_at(schedule, t, radius, power0, spectrum.radial_power_spectrum(x_t)[1])
        plots_frequency.spectrum_chart(view, f"t = {t}", y_limits=limits).to_json()
        t1 = time.perf_counter()
        view = spectrum.spectrum_at(schedule, t, radius, power0, spectrum.picture_power_spectrum(panel)[1])
        plots_frequency.spectrum_chart(view, f"t = {t}", measured_name="x̂₀", y_limits=limits).to_json()
        t2 = time.perf_counter()
        if i >= 2:
            out["view alone, Forward"].append((t1 - t0) * 1000)
            out["view alone, Reverse"].append((t2 - t1) * 1000)
    return out


def _app(source: str | None, res: int, page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=600)
    if source is not None:
        at.session_state["model_source"] = source
    at.session_state["resolution"] = res
    at.switch_page(page)
    return at


def _check(at, what: str) -> None:
    if at.exception or at.error:
        raise SystemExit(f"error: {what}: {[e.value for e in [*at.exception, *at.error]]}")


def bench_forward_page(source: str | None, res: int, repeats: int, view_on: bool, offset: int) -> list[float]:
    at = _app(source, res, "views/forward.py")
    at.session_state["fwd_freq"] = view_on
    at.run()  # first run: the model (for its channels), the photo, the schedule chart
    _check(at, "the Forward page did not render")
    ms = []
    for t in timesteps(repeats, 1000, offset):
        at.slider(key="fwd_t").set_value(t)
        t0 = time.perf_counter()
        at.run()
        ms.append((time.perf_counter() - t0) * 1000)
        _check(at, f"the Forward page failed at t = {t}")
    return ms


def bench_reverse_page(source: str | None, res: int, repeats: int, steps: int) -> list[float]:
    at = _app(source, res, "views/trajectory.py")
    at.session_state["traj_freq"] = True
    at.run()
    at.slider(key="traj_t_start").set_value(999)
    at.slider(key="traj_steps").set_value(steps)
    print(f"making one reverse run of {steps} steps at {res} px…", flush=True)
    at.button(key="traj_go").click().run()
    _check(at, "the reverse run failed")
    k = len(at.session_state["traj_run"]["run"].frames)
    ms = []
    for i in range(repeats):
        at.slider(key="traj_step").set_value(1 + (i * 7 + 3) % k)
        t0 = time.perf_counter()
        at.run()
        ms.append((time.perf_counter() - t0) * 1000)
        _check(at, "the Reverse page failed after a step move")
    return ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a folder or Hub id (default: the bundled photo model)")
    ap.add_argument("--steps", type=int, default=10, help="steps of the reverse run the step slider scrubs")
    timing.add_common_args(ap)
    a = ap.parse_args(argv)

    timing.quiet_streamlit()
    process.configure_allocator()  # the app's allocator setting and thread count
    threads = process.configure_threads(a.threads)
    results = bench_view(a.res, a.repeats)
    results["Forward page, t move, view off"] = bench_forward_page(a.model, a.res, a.repeats, False, 5)
    results["Forward page, t move, view on"] = bench_forward_page(a.model, a.res, a.repeats, True, 7)
    results["Reverse page, step move, view on"] = bench_reverse_page(a.model, a.res, a.repeats, a.steps)
    load = os.getloadavg()

    print(
        f"Frequency view, one slider move at {a.res} px: {torch.get_num_threads()} torch thread(s) (configured "
        f"{threads}), {a.repeats} repeats, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on "
        f"{os.cpu_count()} CPUs"
    )
    summary = timing.print_table(results, 36)
    for page in ("Forward page, t move, view on", "Reverse page, step move, view on"):
        med = summary[page]["median_ms"]
        print(f"budget: {page} median {med:.1f} ms vs {BUDGET_MS:.0f} ms: {'met' if med <= BUDGET_MS else 'NOT met'}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        payload = {"resolution": a.res, "threads": torch.get_num_threads(), "repeats": a.repeats, "loadavg": load}
        Path(a.json).write_text(json.dumps({**payload, "budget_ms": BUDGET_MS, "results": summary}, indent=2))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
