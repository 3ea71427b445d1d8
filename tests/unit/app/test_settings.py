"""The app's settings (issue 33, item 4): the environment is read once, in one place; a bad value stops start-up
with one sentence; docs/server.md lists every variable."""

from __future__ import annotations

import ast
import re
import sys

from conftest import ROOT, app_test

from app import launch, settings
from model.serving import settings as serving_settings

ALL = (*settings.VARIABLES, *serving_settings.VARIABLES)


def test_the_defaults_are_the_unset_environment():
    s = settings.Settings.from_env({})
    assert s == settings.Settings()
    assert (s.model, s.warm_up, s.train_slots, s.long_run_slots, s.decode_slots, s.drain_s) == (
        None, True, 1, None, 2, 20.0,
    )  # fmt: skip
    assert s.serving == serving_settings.ServingSettings()


def test_app_variables_set_their_fields():
    s = settings.Settings.from_env(
        {
            "DIFFUSION_LENS_MODEL": "google/ddpm-cifar10-32",
            "DIFFUSION_LENS_WARM_UP": "0",
            "DIFFUSION_LENS_TRAIN_SLOTS": "3",
            "DIFFUSION_LENS_LONG_RUN_SLOTS": "2",
            "DIFFUSION_LENS_DECODE_SLOTS": "4",
            "DIFFUSION_LENS_SOURCES": "known,local",
            "DIFFUSION_LENS_PUBLIC_ADDRESS": " 0.0.0.0 ",
            "DIFFUSION_LENS_DRAIN_S": "7.5",
            "DIFFUSION_LENS_CONCURRENCY": "4",
        }
    )
    assert (s.model, s.warm_up, s.train_slots, s.long_run_slots, s.decode_slots) == (
        "google/ddpm-cifar10-32", False, 3, 2, 4,
    )  # fmt: skip
    assert (s.sources, s.public_address, s.drain_s, s.serving.concurrency) == ("known,local", "0.0.0.0", 7.5, 4)


def test_docs_list_every_variable_in_one_table():
    """docs/server.md's table has one row per variable of both settings objects, saying what it accepts."""
    text = (ROOT / "docs" / "server.md").read_text()
    rows = re.findall(r"^\| `(DIFFUSION_LENS_\w+)` \| ([^|]+) \|", text, flags=re.M)
    documented = {name: accepts.strip() for name, accepts in rows}
    assert len(rows) == len(documented), "a variable is listed twice"
    assert documented == {v.name: v.accepts for v in ALL}


def test_the_environment_is_read_only_by_the_settings_modules():
    """No os.environ / os.getenv in app/ or model/ but the two settings modules and the launcher (app/launch.py checks
    the settings, hands the environment to the server it starts, and tells the warm-up visitor where it answers)."""
    allowed = {ROOT / "app" / "settings.py", ROOT / "model" / "serving" / "settings.py", ROOT / "app" / "launch.py"}
    offenders = []
    for path in sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "model").rglob("*.py")]):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_a_bad_value_stops_the_app_with_one_sentence(server_env):
    """DIFFUSION_LENS_TRAIN_SLOTS=abc used to be an unguarded int() at import, which broke two pages."""
    server_env(settings.TRAIN_SLOTS_ENV, "abc")
    at = app_test()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [
        "The server cannot start: DIFFUSION_LENS_TRAIN_SLOTS='abc' cannot be used: it accepts a whole number of at "
        "least 1."
    ]
    assert not at.sidebar  # nothing else ran


def test_the_launcher_refuses_to_start_with_a_bad_value(monkeypatch, capsys):
    execs = []
    monkeypatch.setattr(launch.os, "execv", lambda *a: execs.append(a))
    monkeypatch.setattr(launch.os, "environ", {"DIFFUSION_LENS_DRAIN_S": "soon"})
    assert launch.main([]) == 2 and not execs
    said = capsys.readouterr().err
    assert "DIFFUSION_LENS_DRAIN_S='soon' cannot be used: it accepts a number of seconds, 0 or more." in said
    monkeypatch.setattr(launch.os, "environ", {"DIFFUSION_LENS_DRAIN_S": "5"})
    launch.main([])
    assert execs and execs[0][0] == sys.executable
