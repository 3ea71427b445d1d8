"""One :class:`Serving` object per server or command: how its networks run, built once at its edge.

It owns what used to be process-wide state: the inference queue (:class:`model.serving.runtime.InferenceQueue`),
the dynamic batcher (:mod:`model.serving.batching`, the app's only), the arithmetic policy and its remembered
choices (:mod:`model.serving.precision`), the TorchScript traces (:mod:`model.serving.graph`) and the benchmarks'
stats file. The app builds its one ``Serving`` in ``app/settings.py`` (``st.cache_resource``); a command in its
``main``. A model is handed the object that runs it by :meth:`Serving.prepare`, so
:meth:`model.nets.network.LoadedModel.raw` reaches the queue and the batcher through the model, never through a
module global; a model that was not prepared runs its plain fp32 pass directly (library code and most tests).

Pure Python + torch; nothing here imports streamlit.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from model.serving import graph, precision, process
from model.serving.batching import DynamicBatcher
from model.serving.runtime import InferenceQueue
from model.serving.settings import POLICIES, ServingSettings

# network(x (B, C, H, W), t (B,), y (B,) or None) -> output (B, C_out, H, W)
Network = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


class Serving:
    """How this server's (or command's) networks run.

    ``settings``: :class:`ServingSettings` (default: every default). ``policy``: the arithmetic, ``"fp32"`` or
    ``"auto"``, unless ``settings.precision`` overrides it. ``batching``: merge concurrent passes
    (``settings.batch_ms`` > 0), as the app does; commands and tests run unbatched.
    """

    def __init__(self, settings: ServingSettings | None = None, *, policy: str = "fp32", batching: bool = False):
        self.settings = settings or ServingSettings()
        self.policy = self.settings.precision or policy
        if self.policy not in POLICIES:
            raise ValueError(f"precision policy must be one of {POLICIES}, not {self.policy!r}")
        self.queue = InferenceQueue(self.settings.concurrency)
        ms = self.settings.batch_ms if batching else 0.0
        self.batcher = DynamicBatcher(self.queue, ms) if ms > 0 else None
        self.traces = graph.Traces()
        self._lock = threading.Lock()
        self._stats_sources: dict[str, Callable[[], dict]] = {}  # name -> what else the stats file carries
        self._stats_writer: threading.Thread | None = None

    def configure_process(self) -> int:
        """The process policy of :attr:`settings`: allocator, GIL switch interval, torch threads (returned)."""
        return process.configure(self.settings)

    # --- running the network ----------------------------------------------------------

    def run(self, network: Network, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """``network(x, t, y)`` in an inference slot: with other sessions' passes as one batch when batching, else
        alone. x (B, C, H, W), t (B,), y (B,) or None; returns this call's rows (B, C_out, H, W)."""
        if self.batcher is not None:
            return self.batcher.run(network, x, t, y)
        with self.queue.slot():
            return network(x, t, y)

    def prepare(self, model):
        """``model`` (a :class:`model.nets.network.LoadedModel`) run by this object, with the arithmetic the policy
        asks for: under ``"auto"`` the fastest path that passes the fidelity guard (remembered in
        ``settings.precision_cache``); with ``DIFFUSION_LENS_PRECISION=fp32`` fp32 eager or the fp32 graph, whichever
        is faster (``settings.graph`` on); else (the library default) plain fp32."""
        model = dataclasses.replace(model, serving=self, precision=None)
        if self.policy == "auto":
            return precision.apply(model, self.settings.precision_cache, self.settings.graph)
        if self.settings.precision == "fp32" and self.settings.graph:
            # fp32 forced by the operator (a CPU without bf16 units, or exact numbers wanted): the arithmetic stays
            # fp32; the one choice left is eager or the fp32 TorchScript graph (the same numbers, with the GIL
            # released for the other sessions' scripts: model/serving/graph.py), timed by the same guard
            return dataclasses.replace(model, precision=precision.choose(model, paths=[precision.FP32_GRAPH]))
        return model

    # --- what benchmarks read ---------------------------------------------------------

    def stats(self) -> dict:
        """The batcher's :meth:`DynamicBatcher.stats` (``{"enabled": False}`` when off) plus the queue's."""
        out = self.batcher.stats() if self.batcher is not None else {"enabled": False}
        out["queue"] = self.queue.stats()
        return out

    def add_stats_source(self, name: str, source: Callable[[], dict]) -> None:
        """Also write ``source()`` under ``name`` in the stats file (``settings.stats_file``), every second.

        For what only the app can see (app/server/stats.py: Streamlit's media store and sessions). A source that
        raises writes ``{"error": ...}`` instead. Adding a name again replaces its source.
        """
        self._stats_sources[name] = source

    def snapshot(self) -> dict:
        """:meth:`stats` and every added source, as the stats file holds them."""
        out = self.stats()
        for name, source in list(self._stats_sources.items()):
            try:
                out[name] = source()
            except Exception as exc:  # a gauge must never stop the writer
                out[name] = {"error": repr(exc)}
        return out

    def start_stats_writer(self, every_s: float = 1.0) -> threading.Thread | None:
        """Once: a daemon thread that rewrites ``settings.stats_file`` with :meth:`snapshot` every ``every_s``
        (None when no file is set). Benchmarks read it (bench/load.py, bench/soak.py)."""
        path = self.settings.stats_file
        if path is None:
            return None
        with self._lock:
            if self._stats_writer is None:
                self._stats_writer = threading.Thread(
                    target=self._write_forever, args=(Path(path), every_s), name="diffusion-lens-stats", daemon=True
                )
                self._stats_writer.start()
            return self._stats_writer

    def _write_forever(self, path: Path, every_s: float) -> None:
        tmp = path.with_name(path.name + ".tmp")
        while True:
            try:
                tmp.write_text(json.dumps(self.snapshot()))
                tmp.replace(path)  # atomic: a reader never sees half a file
            except OSError:
                pass
            time.sleep(every_s)


__all__ = ["Network", "Serving"]
