"""How long a person waits for the pictures after each action that issue 20 names (item 2).

    .venv/bin/python bench/waits.py [--model DIR_OR_HUB_ID] [--res 64] [--denoise-res 256] [--steps 5]
                                    [--objective-256] [--json bench/out/waits.json]

Drives the real pages through ``streamlit.testing.v1.AppTest`` in this process, the way a person would:

* **Training objective** at ``--res`` px (default 64): its first visit, changing its seed, changing its
  sampled-t count to 200 (and, with ``--objective-256``, the first visit at 256 px);
* **Denoise one step** at ``--denoise-res`` px (default 256): its first visit, then ``--steps`` moves of t to
  values not seen before (the median is printed).

For each action two times, in seconds from the action to:

* **pictures**: every chart (Training objective) or picture (Denoise) of the page has been sent at least once.
  Pages send partial charts that fill in, so a chart counts when its first, partial version is sent. A real
  browser draws an element as soon as it arrives, so this is the wait a person sees;
* **complete**: the script run is over (every chart complete).

The clock is taken inside the script thread whenever an element is sent (``DeltaGenerator._enqueue``).
The goals (issue 20): pictures within 2 s at 64 px for the Training objective, within 5 s for Denoise's first
visit at 256 px, a t step at 256 px about 100 ms plus pictures. The model is loaded (and its cost measured by the
sidebar) before the first action, and that load is printed on its own line: it is not part of a page's wait.
``st.cache_data`` is cleared before every first visit, so nothing comes from an earlier run.

The numbers depend on what else runs on the machine: the 1-minute load average is printed beside each.
Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_ENTRY = str(ROOT / "app" / "streamlit_app.py")
OBJECTIVE_CHARTS = 4  # bits, bound terms, weightings, eps-MSE (the training-step chart needs its button)
DENOISE_PICTURES = 6  # x_t, eps, eps_hat, the error, x_0, x0_hat


class Clock:
    """Records when each element of the running script is sent (patches ``DeltaGenerator._enqueue`` once)."""

    def __init__(self) -> None:
        from streamlit.delta_generator import DeltaGenerator

        self.start = time.perf_counter()
        self.sent: list[tuple[float, str, str]] = []  # (seconds since start, delta type, chart title)
        self._lock = threading.Lock()
        original = DeltaGenerator._enqueue
        clock = self

        def _enqueue(dg, delta_type, element_proto, *args, **kwargs):
            out = original(dg, delta_type, element_proto, *args, **kwargs)
            title = ""
            if delta_type == "plotly_chart":
                title = str(json.loads(element_proto.spec).get("layout", {}).get("title", {}).get("text", ""))
            with clock._lock:
                clock.sent.append((time.perf_counter() - clock.start, delta_type, title))
            return out

        DeltaGenerator._enqueue = _enqueue

    def reset(self) -> None:
        with self._lock:
            self.start, self.sent = time.perf_counter(), []

    def pictures_at(self, kind: str, count: int) -> float | None:
        """Seconds until ``count`` distinct charts (by title) or ``count`` pictures were sent; None if never."""
        seen: set[str] = set()
        n = 0
        for at, delta_type, title in self.sent:
            if kind == "charts" and delta_type == "plotly_chart":
                seen.add(title)
                if len(seen) >= count:
                    return at
            if kind == "pictures" and delta_type == "imgs":
                n += 1
                if n >= count:
                    return at
        return None


def _line(action: str, pictures: float | None, complete: float) -> dict:
    """Print one row and return it."""
    row = dict(action=action, pictures_s=pictures, complete_s=complete, load_1min=os.getloadavg()[0])
    shown = "never" if pictures is None else f"{pictures:6.2f} s"
    print(f"{action:<52} pictures {shown:>9}   complete {complete:6.2f} s   load {row['load_1min']:.2f}", flush=True)
    return row


def _row(action: str, clock: Clock, kind: str, count: int, complete: float) -> dict:
    return _line(action, clock.pictures_at(kind, count), complete)


def _run(at, clock: Clock) -> float:
    clock.reset()
    at.run()
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    return time.perf_counter() - clock.start


def _app(model: str | None, res: int, page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP_ENTRY, default_timeout=900)
    if model:
        at.session_state["model_source"] = model
    at.session_state["resolution"] = res
    at.switch_page(page)
    return at


def objective(model: str | None, res: int, clock: Clock, rows: list[dict], more: bool = True) -> None:
    import streamlit as st

    st.cache_data.clear()
    at = _app(model, res, "views/objective.py")
    done = _run(at, clock)
    rows.append(_row(f"Training objective, first visit at {res} px", clock, "charts", OBJECTIVE_CHARTS, done))
    if not more:
        return
    at.number_input(key="obj_seed").set_value(int(at.session_state["obj_seed"]) + 1)
    done = _run(at, clock)
    rows.append(_row(f"Training objective, seed changed ({res} px)", clock, "charts", OBJECTIVE_CHARTS, done))
    at.select_slider(key="obj_n").set_value(200)
    done = _run(at, clock)
    rows.append(_row(f"Training objective, 200 sampled t ({res} px)", clock, "charts", OBJECTIVE_CHARTS, done))


def denoise(model: str | None, res: int, steps: int, clock: Clock, rows: list[dict]) -> None:
    import streamlit as st

    st.cache_data.clear()
    at = _app(model, res, "views/denoise.py")
    done = _run(at, clock)
    rows.append(_row(f"Denoise one step, first visit at {res} px", clock, "pictures", DENOISE_PICTURES, done))
    T = int(at.slider(key="den_t").max)
    pics, whole = [], []
    for i in range(steps):  # new t each time, so nothing comes from the cache
        at.slider(key="den_t").set_value((int(at.session_state["den_t"]) + 37 + i) % T)
        whole.append(_run(at, clock))
        pics.append(clock.pictures_at("pictures", DENOISE_PICTURES) or float("nan"))
    action = f"Denoise one step, t step at {res} px (median of {steps})"
    rows.append(_line(action, statistics.median(pics), statistics.median(whole)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a folder or Hub id (default: the bundled photo model)")
    ap.add_argument("--res", type=int, default=64, help="Training objective's resolution (default 64)")
    ap.add_argument("--denoise-res", type=int, default=256, help="Denoise one step's resolution (default 256)")
    ap.add_argument("--steps", type=int, default=5, help="t steps on Denoise (default 5)")
    ap.add_argument("--objective-256", action="store_true", help="also the Training objective's first visit at 256 px")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)  # AppTest's "no runtime" and "missing ScriptRunContext" warnings
    clock = Clock()
    rows: list[dict] = []
    start = time.perf_counter()
    for res in sorted({args.res, args.denoise_res, 256 if args.objective_256 else args.res}):
        _run(_app(args.model, res, "views/about.py"), clock)  # loads the model, the sidebar measures its cost
    _line("(before: model load, sidebar cost at each px; About)", None, time.perf_counter() - start)
    objective(args.model, args.res, clock, rows)
    if args.objective_256:
        objective(args.model, 256, clock, rows, more=False)
    denoise(args.model, args.denoise_res, args.steps, clock, rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
