"""The project as a package: installed, its commands resolve, and no code edits sys.path to find it."""

from __future__ import annotations

import importlib
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]


def test_the_project_is_installed_and_imports_from_this_tree():
    """`make setup` installs it editable (pip install -e . --no-deps): app and model are this checkout's."""
    assert metadata.version("diffusion-lens") == PYPROJECT["project"]["version"]
    for name in ("app", "model"):
        assert Path(importlib.import_module(name).__file__).resolve().parent == ROOT / name


def test_no_dependencies_are_declared_so_pip_never_pulls_a_cuda_torch():
    """The pinned requirements.txt (torch's CPU build) is the one list of dependencies."""
    assert "dependencies" not in PYPROJECT["project"]
    assert any(line.startswith("torch==") for line in (ROOT / "requirements.txt").read_text().splitlines())


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_every_command_points_at_a_function(command):
    module, _, attr = SCRIPTS[command].partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), SCRIPTS[command]


def test_no_source_file_edits_sys_path():
    """Tests and benchmarks import the installed packages; bench/'s own helpers are found beside the script
    (run as python bench/X.py) or through pytest's pythonpath setting."""
    edit = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*(\+?=)")
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for folder in ("app", "model", "bench", "tests", "scripts")
        for p in sorted((ROOT / folder).rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if edit.search(line) and p != Path(__file__).resolve()
    ]
    assert not offenders, offenders
