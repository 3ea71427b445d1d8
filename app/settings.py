"""The app's settings: read from the environment once, when the server starts, and kept for every session.

:class:`Settings` holds the app's own ``DIFFUSION_LENS_*`` variables (the default model, the classroom lock, slots
and lanes, the drain) and, in ``serving``, how the network runs (:class:`model.serving.settings.ServingSettings`).
:func:`current` reads them on its first call (the entry file makes that call first, so a bad value stops start-up
with one sentence naming the variable and what it accepts; ``python -m app.launch`` refuses to start at all).
Nothing else in ``app/`` or ``model/`` reads the environment. :func:`serving` builds the server's one
:class:`model.serving.service.Serving` object from them, once. ``docs/server.md`` lists every variable in one table.

A new setting: a commented field here (or in ``ServingSettings`` if ``model/`` uses it), a :class:`Variable` in
:data:`VARIABLES`, and a row in ``docs/server.md``'s table (a test checks the table against both lists).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

import streamlit as st

from model.serving.service import Serving
from model.serving.settings import ServingSettings, SettingsError, Variable, number, read, switch, text, whole

MODEL_ENV = "DIFFUSION_LENS_MODEL"
WARM_UP_ENV = "DIFFUSION_LENS_WARM_UP"
TRAIN_SLOTS_ENV = "DIFFUSION_LENS_TRAIN_SLOTS"
LONG_RUN_SLOTS_ENV = "DIFFUSION_LENS_LONG_RUN_SLOTS"
DECODE_SLOTS_ENV = "DIFFUSION_LENS_DECODE_SLOTS"
SOURCES_ENV = "DIFFUSION_LENS_SOURCES"
PUBLIC_ADDRESS_ENV = "DIFFUSION_LENS_PUBLIC_ADDRESS"
DRAIN_ENV = "DIFFUSION_LENS_DRAIN_S"
PRESENTER_KEY_ENV = "DIFFUSION_LENS_PRESENTER_KEY"
ALLOW_CLEAR_CACHE_ENV = "DIFFUSION_LENS_ALLOW_CLEAR_CACHE"


@dataclass(frozen=True)
class Settings:
    """The app's settings (defaults are what an unset variable gives)."""

    # a model folder or Hub id to use instead of the bundled model; None: the bundled model
    model: str | None = None
    # load the default model in the background at the first request (app/compute/core.py warm_up)
    warm_up: bool = True
    # particle-lab trainings running at once, for the whole server, in arrival order (app/compute/particles.py)
    train_slots: int = 1
    # steps of long runs computing at once (app/server/lanes.py); None: inference slots - 1, at least 1
    long_run_slots: int | None = None
    # photo decodes running at once; the others wait their turn (app/server/uploads.py)
    decode_slots: int = 2
    # what the model picker and links may load (app/session/sources.py); None: follows the public address
    sources: str | None = None
    # where students reach the server when a proxy publishes it (app/session/sources.py); None: server.address
    public_address: str | None = None
    # seconds to wait for long runs after SIGTERM (app/server/drain.py)
    drain_s: float = 20.0
    # the key a teacher types to present to the class (app/ui/present.py); None: no key asked on this machine only
    presenter_key: str | None = None
    # let a browser's "Clear caches" empty the caches every session shares (app/server/guard.py); off on a server
    allow_clear_cache: bool = False
    # how the network runs: queue, threads, batching, arithmetic, device (model/serving/settings.py)
    serving: ServingSettings = dataclasses.field(default_factory=ServingSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """The settings ``environ`` describes; :class:`SettingsError` (one sentence) if a value cannot be used."""
        return cls(**read(VARIABLES, environ), serving=ServingSettings.from_env(environ))


VARIABLES = (
    Variable(MODEL_ENV, "model", "a model folder or a Hub id", text),
    Variable(WARM_UP_ENV, "warm_up", "on or off", switch),
    Variable(TRAIN_SLOTS_ENV, "train_slots", "a whole number of at least 1", whole(1)),
    Variable(LONG_RUN_SLOTS_ENV, "long_run_slots", "a whole number of at least 1", whole(1)),
    Variable(DECODE_SLOTS_ENV, "decode_slots", "a whole number of at least 1", whole(1)),
    Variable(SOURCES_ENV, "sources", "a comma-separated list of bundled, known, hub, local, all, owner/name", text),
    Variable(PUBLIC_ADDRESS_ENV, "public_address", "a host name or IP address", text),
    Variable(DRAIN_ENV, "drain_s", "a number of seconds, 0 or more", number(0)),
    Variable(PRESENTER_KEY_ENV, "presenter_key", "any text", text),
    Variable(ALLOW_CLEAR_CACHE_ENV, "allow_clear_cache", "on or off", switch),
)


@st.cache_resource(show_spinner=False)
def current() -> Settings:
    """The settings of this server process, read from the environment on the first call (the entry file's)."""
    return Settings.from_env(os.environ)


@st.cache_resource(show_spinner=False)
def serving() -> Serving:
    """The one :class:`Serving` object of this server process, built at the first call (the entry file's): the
    fair inference queue, the batcher, the arithmetic policy ("auto" unless DIFFUSION_LENS_PRECISION says), the
    process policy (threads, allocator, GIL switch) and, for benchmarks, the stats file writer."""
    built = Serving(current().serving, policy="auto", batching=True)
    built.configure_process()
    built.start_stats_writer()
    return built


def reload() -> Settings:
    """Read the environment again (tests that change a variable; a server reads it once)."""
    current.clear()
    return current()


__all__ = ["Settings", "SettingsError", "VARIABLES", "current", "reload", "serving"]
