"""How a server (or a command) runs the network, as one typed object read from the environment once.

:class:`ServingSettings` holds every ``DIFFUSION_LENS_*`` variable that shapes serving: the inference queue,
threads, batching, the arithmetic and where the network runs. :func:`ServingSettings.from_env` is called once, at
the edge (the app's entry through ``app/settings.py``, or a command's ``main``), and the object is passed to what
needs it; nothing else in ``model/`` reads the environment (:meth:`ServingSettings.from_environment` is where a
command does). A value it cannot use stops start-up with one
:class:`SettingsError` sentence that names the variable and what it accepts. ``docs/server.md`` lists every
variable in one table (``tests/unit/model/serving/test_serving_settings.py`` checks the table against :data:`VARIABLES`).

The :class:`Variable` helper and :func:`read` are shared with the app's own settings (``app/settings.py``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLICIES = ("fp32", "auto")  # the arithmetic policies (model/serving/precision.py)
_ON = ("1", "on", "true", "yes")
_OFF = ("0", "off", "false", "no")


class SettingsError(ValueError):
    """A variable's value cannot be used: one sentence naming the variable and what it accepts."""


@dataclass(frozen=True)
class Variable:
    """One environment variable: the settings field it sets, what it accepts (in words), and its parser.

    ``parse`` gets the stripped, non-empty value and raises ValueError when it cannot use it; an unset or empty
    variable leaves the field at its default.
    """

    name: str
    field: str
    accepts: str
    parse: Callable[[str], object]


def whole(minimum: int) -> Callable[[str], int]:
    """A parser for a whole number of at least ``minimum``."""

    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise ValueError(raw)
        return value

    return parse


def number(minimum: float) -> Callable[[str], float]:
    """A parser for a number (decimals allowed) of at least ``minimum``."""

    def parse(raw: str) -> float:
        value = float(raw)
        if not value >= minimum:  # also refuses nan
            raise ValueError(raw)
        return value

    return parse


def switch(raw: str) -> bool:
    """on / off (also 1 / 0, true / false, yes / no)."""
    low = raw.lower()
    if low in _ON:
        return True
    if low in _OFF:
        return False
    raise ValueError(raw)


def one_of(*choices: str) -> Callable[[str], str]:
    """A parser for one of ``choices`` (any case)."""

    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(raw)
        return raw.lower()

    return parse


def text(raw: str) -> str:
    return raw


def _device(raw: str) -> str:
    import torch

    try:
        return str(torch.device(raw))
    except RuntimeError as exc:
        raise ValueError(raw) from exc


def _cache(raw: str) -> Path | None:
    return None if raw.lower() == "off" else Path(raw).expanduser()


def read(variables: Sequence[Variable], environ: Mapping[str, str]) -> dict[str, object]:
    """{field: value} for every variable set in ``environ``; raises :class:`SettingsError` on the first bad one."""
    values: dict[str, object] = {}
    for var in variables:
        raw = (environ.get(var.name) or "").strip()
        if not raw:
            continue
        try:
            values[var.field] = var.parse(raw)
        except ValueError:
            raise SettingsError(f"{var.name}={raw!r} cannot be used: it accepts {var.accepts}.") from None
    return values


def default_precision_cache() -> Path:
    return Path.home() / ".cache" / "diffusion-lens" / "precision"


@dataclass(frozen=True)
class ServingSettings:
    """Serving, as the environment sets it (defaults are what an unset variable gives)."""

    # network forward passes allowed at once; the others queue first come, first served (bench/concurrency.py)
    concurrency: int = 2
    # torch threads per forward pass; None: the cores this process may use // concurrency, at least 1
    threads: int | None = None
    # how long a batch of students' passes waits for company (ms); 0 turns batching off (model/serving/batching.py)
    batch_ms: float = 5.0
    # benchmarks: a JSON file the server rewrites every second with its queue, batch and store figures
    stats_file: Path | None = None
    # Python's GIL switch interval in ms (Python's own is 5; at least 0.05): bench/gil_convoy.py
    gil_switch_ms: float = 1.0
    # "tuned": glibc keeps freed tensor memory for reuse (model/serving/process.py); "default": glibc as it is
    malloc: str = "tuned"
    # "fp32" or "auto" forces that arithmetic policy; None: the edge's own ("auto" in the app, a command's flag)
    precision: str | None = None
    # with "auto", each arithmetic is also tried as a TorchScript graph (model/serving/graph.py)
    graph: bool = True
    # where precision choices are remembered per machine; None: not remembered
    precision_cache: Path | None = dataclasses.field(default_factory=default_precision_cache)
    # where the network runs ("cpu", "cuda", "cuda:1"...); None: CUDA when available, else the CPU
    device: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServingSettings:
        """The settings ``environ`` describes (unset variables keep their defaults); :class:`SettingsError` if a
        value cannot be used."""
        return cls(**read(VARIABLES, environ))

    @classmethod
    def from_environment(cls) -> ServingSettings:
        """:meth:`from_env` of this process's environment: what a command's ``main`` calls, once."""
        return cls.from_env(os.environ)


VARIABLES = (
    Variable("DIFFUSION_LENS_CONCURRENCY", "concurrency", "a whole number of at least 1", whole(1)),
    Variable("DIFFUSION_LENS_THREADS", "threads", "a whole number of at least 1", whole(1)),
    Variable("DIFFUSION_LENS_BATCH_MS", "batch_ms", "a number of milliseconds, 0 or more (0: no batching)", number(0)),
    Variable("DIFFUSION_LENS_STATS_FILE", "stats_file", "a file path", Path),
    Variable("DIFFUSION_LENS_GIL_SWITCH_MS", "gil_switch_ms", "a number of milliseconds, at least 0.05", number(0.05)),
    Variable("DIFFUSION_LENS_MALLOC", "malloc", "tuned or default", one_of("tuned", "default")),
    Variable("DIFFUSION_LENS_PRECISION", "precision", "fp32 or auto", one_of(*POLICIES)),
    Variable("DIFFUSION_LENS_GRAPH", "graph", "on or off", switch),
    Variable("DIFFUSION_LENS_PRECISION_CACHE", "precision_cache", "a folder, or off", _cache),
    Variable("DIFFUSION_LENS_DEVICE", "device", "a torch device such as cpu, cuda or cuda:1", _device),
)

__all__ = [
    "POLICIES",
    "ServingSettings",
    "SettingsError",
    "VARIABLES",
    "Variable",
    "number",
    "one_of",
    "read",
    "switch",
    "text",
    "whole",
]
