"""The charts a slider step redraws, built from cached parts and shared by every session.

Building a Plotly figure is pure Python (each property is validated and copied): 20-50 ms
per chart, all of it holding the GIL, so on a classroom server every slider step of every
student paid it, and slowed the network's forward passes, which wait for the GIL between
ops (bench/load.py with py-spy --gil on the server shows the share). The builders in
app/plots*.py stay pure and are split in two: the part that does not depend on t (built
once per schedule, or once per sweep result) and a cheap copy with t marked. Both are kept
in bounded ``st.cache_resource`` caches keyed on exactly what they draw. One figure object
is handed to every session that asks: ``st.plotly_chart`` only reads it (it serialises a
copy), and nothing here mutates it.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app.charts import plots, reverse
from app.compute import core

FIGURES_KEPT = 256  # per cache; a figure is about 100 kB of Python objects


@st.cache_resource(max_entries=4, show_spinner=False)
def _schedule_base(schedule_name: str) -> go.Figure:
    return plots.schedule_base(core.schedule(schedule_name))


@st.cache_resource(max_entries=FIGURES_KEPT, show_spinner=False)
def schedule_chart(schedule_name: str, t: int) -> go.Figure:
    """:func:`app.charts.plots.schedule_chart` of the named schedule at ``t``."""
    return plots.mark_schedule(_schedule_base(schedule_name), core.schedule(schedule_name), t)


@st.cache_resource(max_entries=1, show_spinner=False)
def _sweep_template() -> go.Figure:
    return reverse.sweep_base((0, 1), (1.0, 1.0), (1.0, 1.0))  # validated once; every sweep refills it


@st.cache_resource(max_entries=FIGURES_KEPT, show_spinner=False)
def _sweep_base(ts: tuple[int, ...], mse: tuple[float, ...], psnr: tuple[float, ...]) -> go.Figure:
    return reverse.refill_sweep(_sweep_template(), ts, mse, psnr)


@st.cache_resource(max_entries=FIGURES_KEPT, show_spinner=False)
def sweep_chart(
    ts: tuple[int, ...],
    mse: tuple[float, ...],
    psnr: tuple[float, ...],
    current_t: int,
    current: tuple[float, float] | None = None,
) -> go.Figure:
    """:func:`app.charts.reverse.sweep_chart` (tuples, so that the key is exact and cheap to hash)."""
    return reverse.mark_sweep(_sweep_base(ts, mse, psnr), current_t, current)
