"""bench/ is thin scripts over one harness package: no script imports another script, the harness imports no script,
and nothing in bench/ sits in an import cycle. Read from the source (ast), so nothing is run."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCRIPTS = {p.stem for p in BENCH.glob("*.py")}
HARNESS = BENCH / "harness"


def _module_name(path: Path) -> str:
    """``load`` for bench/load.py, ``harness.students`` for bench/harness/students.py."""
    parts = path.relative_to(BENCH).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The bench modules (scripts and harness modules) ``path`` imports, anywhere in it (TYPE_CHECKING included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name in SCRIPTS or name == "harness" or name.startswith("harness."):
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in BENCH.rglob("*.py") if "results" not in p.parts and "out" not in p.parts}
    return {name: {i for i in _imports(path) if i in modules} for name, path in modules.items()}


def test_the_harness_is_a_package_beside_the_scripts():
    assert (HARNESS / "__init__.py").is_file()
    assert not [p.name for p in BENCH.glob("_*.py")], "shared code belongs in bench/harness/, not a _script.py"


def test_no_script_imports_another_script_and_the_harness_imports_none():
    offenders = [
        f"{name} imports {dep}" for name, deps in _graph().items() for dep in deps if dep.split(".")[0] in SCRIPTS
    ]
    assert not offenders, offenders


def test_bench_has_no_import_cycle():
    graph = _graph()
    cycles, state = [], {}  # state: 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_every_bench_file_is_under_400_lines():
    long = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in sorted(BENCH.rglob("*.py"))
        if "results" not in p.parts and (n := len(p.read_text().splitlines())) > 400
    ]
    assert not long, long
