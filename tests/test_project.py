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


# The sub-packages of model/, lowest first: each may import only the ones before it (and itself). serving (queue,
# batching, arithmetic, settings) sits below nets: a loaded network is handed the Serving object that runs it. The command
# lines come last, and only the two README launchers (model/figure.py, model/likelihood.py) import them.
LAYERS = ["diffusion", "images", "serving", "nets", "training", "evaluation", "cli"]


def _model_imports(path: Path) -> set[str]:
    """Every model.* module imported anywhere in ``path`` (top level or inside functions)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "model":
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "model"}
    return found


def test_each_sub_package_imports_only_the_layers_below_it():
    offenders = []
    for i, layer in enumerate(LAYERS):
        allowed = set(LAYERS[: i + 1])
        for path in sorted((ROOT / "model" / layer).rglob("*.py")):
            for name in _model_imports(path):
                parts = name.split(".")
                if len(parts) > 1 and parts[1] in LAYERS and parts[1] not in allowed:
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders


def test_model_has_no_import_cycles_between_modules():
    """Modules as nodes, imports (wherever they are written) as edges: no cycle."""
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "model").rglob("*.py")
    }
    graph = {m: {n for n in _model_imports(p) if n in modules and n != m} for m, p in modules.items()}
    assert (cycle := _find_cycle(graph)) is None, " -> ".join(cycle)
    assert graph["model.figure"] == {"model.cli.figure"}  # the check sees imports at all


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the import graph (module -> modules it imports), as a path, or None (depth-first search)."""
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*stack, m, n]
            if n not in state and (cycle := visit(n, [*stack, m])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m, [])):
            return cycle
    return None


def test_the_model_package_never_imports_the_app_or_the_ui():
    offenders = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in sorted((ROOT / "model").rglob("*.py"))
        for n in _imported_top_names(p)
        if n in {"app", "streamlit", "plotly"}
    ]
    assert not offenders, offenders


# app/'s layers, highest first: a module may import its own layer and the ones after it, never one before it.
# charts/ is a leaf beside them (numbers in, figure or picture out): it imports only charts/ and model/. At app/'s top
# level only the entry (which configures and routes), the settings and the launcher.
APP_LAYERS = ["views", "ui", "session", "compute", "server"]
APP_TOP = {"__init__", "streamlit_app", "settings", "launch"}


def _app_modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "app").rglob("*.py")
    }


def _app_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every app module imported anywhere in ``path`` (``from app.x import y`` counts y when y is a module)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "app":
            for a in node.names:
                found.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "app"}
    return found


def _app_layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in [*APP_LAYERS, "charts"]) else "top"


def test_app_keeps_at_most_four_modules_at_its_top_level_and_the_rest_in_its_layers():
    top = {p.stem for p in (ROOT / "app").glob("*.py")}
    assert top <= APP_TOP, top - APP_TOP
    folders = {p.name for p in (ROOT / "app").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {*APP_LAYERS, "charts"}, folders


def test_each_app_layer_imports_only_itself_and_the_layers_below_it():
    modules = _app_modules()
    offenders = []
    for name, path in sorted(modules.items()):
        layer = _app_layer(name)
        for dep in _app_imports(path, modules):
            dep_layer = _app_layer(dep)
            if layer == "top" or dep_layer == "top" and dep in ("app", "app.settings"):
                continue  # the entry routes to everything; everybody may read the settings
            if layer == "charts":
                ok = dep_layer == "charts"
            elif dep_layer == "charts":
                ok = layer in ("views", "ui")
            elif dep_layer == "top":
                ok = False
            else:
                ok = APP_LAYERS.index(dep_layer) >= APP_LAYERS.index(layer)
            if not ok:
                offenders.append(f"{path.relative_to(ROOT)} ({layer}) imports {dep} ({dep_layer})")
    assert not offenders, offenders
    assert "app.compute.core" in _app_imports(ROOT / "app" / "session" / "image.py", modules)  # the check sees imports


def test_pages_never_import_model_directly():
    """A page reads its widgets, asks app/ (compute/ is the door to model/) and draws."""
    offenders = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in sorted((ROOT / "app" / "views").glob("*.py"))
        for n in _imported_top_names(p)
        if n == "model"
    ]
    assert not offenders, offenders


def test_compute_draws_nothing():
    """app/compute/ holds computations, not drawing: no st.<element> call there (a slow one reports through a
    ``_progress`` callback and the page draws the bar); st.cache_data / st.cache_resource / st.session_state only."""
    import ast

    allowed = {"cache_data", "cache_resource", "session_state", "runtime"}
    offenders = [
        f"{p.relative_to(ROOT)}:{n.lineno} st.{n.attr}"
        for p in sorted((ROOT / "app" / "compute").glob("*.py"))
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id == "st"
        and n.attr not in allowed
    ]
    assert not offenders, offenders


def test_app_has_no_import_cycles_between_modules():
    modules = _app_modules()
    graph = {m: {n for n in _app_imports(p, modules) if n in modules and n != m} for m, p in modules.items()}
    assert (cycle := _find_cycle(graph)) is None, " -> ".join(cycle)
    assert "app.session.which_model" in graph["app.ui.common"]  # the check sees imports at all


def test_no_global_statement_in_app_or_model():
    """State that lives as long as the server is made by a st.cache_resource function or held by an object built
    at the edge (the Serving object), never rebound through a global statement."""
    import ast

    offenders = [
        f"{p.relative_to(ROOT)}:{n.lineno}"
        for p in sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "model").rglob("*.py")])
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.Global)
    ]
    assert not offenders, offenders


def test_no_source_file_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("app", "model")  # bench/: tests/test_bench_layout.py
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long


def _imported_top_names(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_every_python_m_command_in_the_docs_names_a_runnable_module():
    """`python -m model.X` in the README, docs/, the Makefile, the scripts and the code's own help: X exists and
    runs a main() under ``if __name__ == "__main__"``."""
    import importlib.util

    texts = [ROOT / "README.md", ROOT / "Makefile", ROOT / "Dockerfile", *(ROOT / "scripts").glob("*.sh")]
    texts += [*(ROOT / "docs").glob("*.md")]
    texts += [*(ROOT / "model").rglob("*.py"), *(ROOT / "app").rglob("*.py")]
    commands = {m for p in texts for m in re.findall(r"-m (model(?:\.[a-z_0-9]+)+)(?![\w.])", p.read_text())}
    assert {"model.figure", "model.likelihood", "model.cli.train"} <= commands
    for name in sorted(commands):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"python -m {name}: no such module"
        source = Path(spec.origin).read_text()
        assert 'if __name__ == "__main__":' in source and "main()" in source, f"python -m {name} would do nothing"


def test_the_tests_mirror_the_layout():
    """tests/unit/model/<sub-package>/ for each sub-package of model/ that holds logic, tests/unit/app/ for the app; every
    test folder names a real package."""
    packages = {p.parent.name for p in (ROOT / "model").glob("*/__init__.py")}
    test_dirs = {
        p.name for p in (ROOT / "tests" / "unit" / "model").iterdir() if p.is_dir() and p.name != "__pycache__"
    }
    assert test_dirs <= packages, test_dirs - packages
    assert packages - test_dirs <= {"cli"}, packages - test_dirs  # the commands are tested with what they run
    assert any((ROOT / "tests" / "unit" / "app").glob("test_*.py"))


def test_no_test_folder_shadows_a_package():
    """tests/ is on sys.path (pytest's pythonpath, and the folder of the top conftest.py): a folder there named like
    a top-level package would be imported instead of the package whenever the checkout is not first on sys.path."""
    assert not {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()} & {"app", "model", "bench"}


def test_every_link_and_path_in_the_readme_and_docs_exists():
    """The README is the newcomer's page and docs/ holds the rest: every relative link and every
    `bench/…`, `app/…`, `model/…`, `docs/…` path they name is a real file (a moved or renamed file breaks this)."""
    missing = []
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = doc.read_text()
        links = re.findall(r"\]\(([^)#:]+)\)", text)
        paths = re.findall(r"`((?:bench|app|model|docs|scripts|deploy)/[\w./-]+\.(?:py|md|sh|txt|yaml))`", text)
        for target in links:
            if not target.endswith((".png", ".md", ".py", ".txt", ".sh", ".yaml")):
                continue
            if not (doc.parent / target).exists():
                missing.append(f"{doc.name}: link {target}")
        missing += [f"{doc.name}: {p}" for p in paths if not (ROOT / p).exists()]
    assert not missing, missing


def test_the_readme_is_for_a_newcomer():
    """Issue 26: the README is the pitch, the two commands, the pages and the layout; server, deployment and
    performance live in docs/. It stays short, and it copies no measured figure (those are in bench/results/)."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "make app" in text and "make test" in text
    assert not re.search(r"\b\d+(\.\d+)? ?(ms|GiB|MiB)\b|p95 (of )?\d", text), "a measured figure in the README"
