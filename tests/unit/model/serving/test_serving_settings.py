"""Serving's settings: read from the environment in one place, every variable typed, a bad value one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.serving.settings import VARIABLES, ServingSettings, SettingsError


def test_an_empty_environment_gives_the_defaults():
    assert ServingSettings.from_env({}) == ServingSettings()
    blank = {v.name: "  " for v in VARIABLES}  # set but empty: the default too
    assert ServingSettings.from_env(blank) == ServingSettings()


def test_every_variable_sets_its_field():
    env = {
        "DIFFUSION_LENS_CONCURRENCY": "3",
        "DIFFUSION_LENS_THREADS": "1",
        "DIFFUSION_LENS_BATCH_MS": "0",
        "DIFFUSION_LENS_STATS_FILE": "/tmp/stats.json",
        "DIFFUSION_LENS_GIL_SWITCH_MS": "0.5",
        "DIFFUSION_LENS_MALLOC": "default",
        "DIFFUSION_LENS_PRECISION": "FP32",
        "DIFFUSION_LENS_GRAPH": "off",
        "DIFFUSION_LENS_PRECISION_CACHE": "off",
        "DIFFUSION_LENS_DEVICE": "cpu",
    }
    assert {v.name for v in VARIABLES} == set(env)
    s = ServingSettings.from_env(env)
    assert (s.concurrency, s.threads, s.batch_ms, s.stats_file) == (3, 1, 0.0, Path("/tmp/stats.json"))
    assert (s.gil_switch_ms, s.malloc, s.precision, s.graph) == (0.5, "default", "fp32", False)
    assert (s.precision_cache, s.device) == (None, "cpu")
    assert ServingSettings.from_env({"DIFFUSION_LENS_PRECISION_CACHE": "~/x"}).precision_cache == Path.home() / "x"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIFFUSION_LENS_CONCURRENCY", "nonsense"),
        ("DIFFUSION_LENS_CONCURRENCY", "0"),
        ("DIFFUSION_LENS_THREADS", "2.5"),
        ("DIFFUSION_LENS_BATCH_MS", "-1"),
        ("DIFFUSION_LENS_BATCH_MS", "nan"),
        ("DIFFUSION_LENS_GIL_SWITCH_MS", "0.01"),
        ("DIFFUSION_LENS_MALLOC", "fast"),
        ("DIFFUSION_LENS_PRECISION", "bf16"),
        ("DIFFUSION_LENS_GRAPH", "maybe"),
        ("DIFFUSION_LENS_DEVICE", "gpu"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_variable_and_what_it_accepts(name, value):
    accepts = next(v.accepts for v in VARIABLES if v.name == name)
    with pytest.raises(SettingsError) as err:
        ServingSettings.from_env({name: value})
    assert str(err.value) == f"{name}={value!r} cannot be used: it accepts {accepts}."
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained traceback for the console
