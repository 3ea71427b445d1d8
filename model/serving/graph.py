"""The UNet as a TorchScript graph: the same arithmetic, run with Python's GIL released.

A classroom server is one Python process and every session is a thread in it. In eager mode
a forward pass is a few hundred torch ops driven from Python, and the thread must take the
GIL back between ops; while other sessions' scripts run Python (building figures, encoding
pictures) each of those hand-overs waits for the holder. A pass of 16 ms alone took 1.7 s
beside one busy Python thread (``bench/gil_convoy.py``, 64 px, 5 ms switch interval). Traced
by :func:`torch.jit.trace`, the whole pass is one call into TorchScript's interpreter, which
runs the graph without the GIL: 25 ms beside the same thread. Alone it is also a little
faster (less Python per op).

What is traced: ``unet(x, t[, class_labels=y]).sample`` of a diffusers ``UNet2DModel`` in eval
mode, once per (network, precision path, with or without labels), on the first call, under
the path's autocast context. The trace shares the network's parameter tensors (no copy).
Nothing in the UNet's forward branches on values, and its shape arithmetic is recorded as
size ops, so one trace serves every batch size and image size
(tests/unit/model/serving/test_graph.py checks fp32 outputs equal eager ones exactly at several
shapes, conditional and not). The first two calls of a new trace are slower (TorchScript's
profiling executor records shapes, then optimises).

Forward hooks on the network's modules do not fire inside a trace; :mod:`model.nets.probe`
calls the eager module directly for that reason.

The traces belong to a :class:`Traces` object, one per :class:`model.serving.service.Serving`.
Used only when the precision guard picked a graph path (:mod:`model.serving.precision`,
``DIFFUSION_LENS_GRAPH=off`` leaves graphs out of the candidates).

Shapes: x (B, C, H, W) on the network's device, t (B,) int64, y (B,) int64 or None.
Returns the raw output (B, C_out, H, W) in the path's dtype. Pure torch; no streamlit.
"""

from __future__ import annotations

import threading
import warnings
import weakref

import torch

from model.serving.precision import PrecisionPath


class _Sample(torch.nn.Module):
    """``unet(x, t[, class_labels=y]).sample`` as a module with tensor-only inputs and output, for tracing."""

    def __init__(self, unet: torch.nn.Module, conditional: bool) -> None:
        super().__init__()
        self.unet = unet
        self.conditional = conditional

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.unet(x, t, class_labels=y) if self.conditional else self.unet(x, t)
        return out.sample if hasattr(out, "sample") else out


class Traces:
    """The traces one :class:`model.serving.service.Serving` object made: per network, per (path, conditional).

    Kept in a weak dictionary, so a network's traces go with it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # network -> {(path name, conditional): traced module}
        self._traces: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[str, bool], torch.jit.ScriptModule]] = (
            weakref.WeakKeyDictionary()
        )

    def traced(
        self, unet: torch.nn.Module, path: PrecisionPath, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None
    ) -> torch.jit.ScriptModule:
        """The trace of ``unet`` under ``path`` (made on first use, with x, t, y as the example inputs)."""
        key = (path.name, y is not None)
        with self._lock:
            per_net = self._traces.setdefault(unet, {})
            graph = per_net.get(key)
            if graph is None:
                example = (x, t) if y is None else (x, t, y)
                with warnings.catch_warnings(), torch.no_grad(), path.context():
                    warnings.simplefilter("ignore")  # TracerWarnings about Python-side shape checks
                    graph = torch.jit.trace(_Sample(unet, y is not None).eval(), example, check_trace=False)
                per_net[key] = graph
        return graph

    def run(
        self, unet: torch.nn.Module, path: PrecisionPath, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None
    ) -> torch.Tensor:
        """One forward pass of ``unet`` on x (B, C, H, W), t (B,), y (B,) or None, as a graph under ``path``."""
        graph = self.traced(unet, path, x, t, y)
        with torch.inference_mode(), path.context():
            return graph(x, t) if y is None else graph(x, t, y)

    def count(self, unet: torch.nn.Module) -> int:
        """How many traces ``unet`` has (tests, diagnostics)."""
        with self._lock:
            return len(self._traces.get(unet, {}))


__all__ = ["Traces"]
