"""One forward pass beside busy Python threads: the GIL convoy a classroom server runs into.

A Streamlit server is one process: every session's script is a thread, and the network's
forward passes run in those threads too. Torch releases the GIL inside each op and takes it
back after, so a pass of a few hundred small ops asks for the GIL a few hundred times. While
another thread runs Python (a script building a figure, encoding a picture), each of those
asks waits for the holder to give the GIL up: after up to ``sys.getswitchinterval()`` (5 ms
by default). This prints the time of one pass (the app's model and arithmetic, batch 1, one
torch thread per pass as the server runs it) alone and beside ``--busy`` threads that run
pure Python, at several switch intervals; and the same with the network traced by
TorchScript (model/serving/graph.py), whose whole graph runs with the GIL released::

    .venv/bin/python bench/gil_convoy.py [--busy 1 3] [--res 64] [--intervals-ms 5 1 0.5]

The app sets the interval with ``model.serving.process.configure_gil_switch`` (``DIFFUSION_LENS_GIL_SWITCH_MS``).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import threading
import time

import torch

from model.nets import network
from model.serving import precision, process
from model.serving.service import Serving


def busy(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(1000))


def pass_ms(run, passes: int) -> float:
    """Median milliseconds of ``run()`` over ``passes`` calls."""
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, nargs="+", default=[1, 3], help="busy Python threads beside the pass")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--intervals-ms", type=float, nargs="+", default=[5.0, 1.0, 0.5])
    ap.add_argument("--passes", type=int, default=10)
    args = ap.parse_args()

    process.configure_threads(1)
    model = Serving(policy="auto").prepare(network.load_model(None))  # its graph traces live in the Serving object
    x = torch.randn(1, model.channels, args.res, args.res)
    t = torch.full((1,), 500)
    path = model.precision.path_for(t) if model.precision is not None else precision.FP32
    eager = dataclasses.replace(model, precision=precision.PrecisionChoice(path=precision.as_eager(path)))
    graph = dataclasses.replace(model, precision=precision.PrecisionChoice(path=precision.as_graph(path)))
    runs = {"eager": lambda: eager.predict(x, t), "graph": lambda: graph.predict(x, t)}  # model/serving/graph.py
    label = network.precision_label(model)
    print(f"model: {model.source}, {args.res} px, batch 1, 1 torch thread, arithmetic: {label}")
    print(f"{'switch ms':>10}{'busy':>6}" + "".join(f"{name + ' ms':>12}" for name in runs))
    for interval in args.intervals_ms:
        sys.setswitchinterval(interval / 1000)
        for n in [0, *args.busy]:
            stop = threading.Event()
            threads = [threading.Thread(target=busy, args=(stop,), daemon=True) for _ in range(n)]
            for th in threads:
                th.start()
            try:
                cells = [pass_ms(run, args.passes if n == 0 else max(3, args.passes // 3)) for run in runs.values()]
            finally:
                stop.set()
                for th in threads:
                    th.join()
            print(f"{interval:>10g}{n:>6}" + "".join(f"{c:>12.1f}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
