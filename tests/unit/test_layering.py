"""Import rules, read from the source with ``ast`` (every import: module level, inside functions, under
``TYPE_CHECKING``), so a late or type-only import cannot hide a cycle.

1. No import cycle between the suite's modules.
2. Packages import one way: ``locustfile → scenarios → users → tasks → sla_checks → config → contract`` (a package
   imports itself and the packages after it, never one before it).
3. The load generator (every package above) never imports the reference backend; the backend imports only itself and
   ``contract`` (what both share: schema, probe queries, the fault-injection client).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS: tuple[str, ...] = ("locustfile", "scenarios", "users", "tasks", "sla_checks", "config", "contract")
"""Top to bottom: a package may import the packages after it."""
BACKEND = "reference_backend"
SCANNED: tuple[str, ...] = (*LAYERS, BACKEND, "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the scanned packages (tests/ and .venv/ left out): dotted name → file."""
    modules: dict[str, Path] = {}
    for top in SCANNED:
        single = root / f"{top}.py"
        if single.is_file():
            modules[top] = single
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else ():
            modules[_module_name(path)] = path
    return modules


def _imported(node: ast.Import | ast.ImportFrom, name: str, is_package: bool, modules: Mapping[str, Path]) -> set[str]:
    """The project modules one import statement of module ``name`` loads."""
    if isinstance(node, ast.Import):
        targets = {alias.name for alias in node.names}
    else:
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        # ``from pkg import mod`` loads pkg.mod; ``from mod import name`` loads mod
        targets = {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules}
        targets.add(target)
    found = set()
    for target in targets:
        while target and target not in modules:  # ``import a.b.c`` of an unknown leaf: its nearest known parent
            target = target.rpartition(".")[0]
        if target and target.split(".")[0] in SCANNED:
            found.add(target)
    return found


def import_graph(modules: Mapping[str, Path]) -> dict[str, dict[str, int]]:
    """module → {imported module: line of the first import}, self-imports left out."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(node, name, path.name == "__init__.py", modules):
                    if target != name:
                        edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each a set of modules importing each other)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def layer_violations(graph: Mapping[str, Mapping[str, int]], modules: Mapping[str, Path]) -> list[str]:
    """Every import against the package order, and every import of the backend from the generator (or of the
    generator from the backend), as ``file:line: a imports b``."""
    bad = []
    for name, edges in sorted(graph.items()):
        top = name.split(".")[0]
        for target, line in sorted(edges.items()):
            other = target.split(".")[0]
            where = f"{modules[name].relative_to(ROOT)}:{line}: {name} imports {target}"
            if top in LAYERS and other == BACKEND:
                bad.append(f"{where} (the load generator must not import the reference backend: use contract/)")
            elif top == BACKEND and other not in (BACKEND, "contract"):
                bad.append(f"{where} (the reference backend imports only itself and contract/)")
            elif top in LAYERS and other in LAYERS and LAYERS.index(other) < LAYERS.index(top):
                bad.append(f"{where} (against the order {' → '.join(LAYERS)})")
    return bad


MODULES = project_modules()
GRAPH = import_graph(MODULES)


def test_the_scan_sees_the_suite() -> None:
    assert len(MODULES) > 60
    assert {"locustfile", "users.chat", "sla_checks.plugin", "contract.schema"} <= set(MODULES)
    # a function-level import is an edge too (the scenario plugin loads the fault client only when a run injects
    # faults)
    assert "contract.faults" in GRAPH["scenarios.fault_handoff"]


def test_no_import_cycle() -> None:
    assert find_cycles(GRAPH) == []


def test_packages_import_one_way_and_the_generator_never_imports_the_backend() -> None:
    assert layer_violations(GRAPH, MODULES) == []


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """A cycle hidden behind a late and a TYPE_CHECKING import, a backend import and an upward import are all found."""
    files = {
        "tasks/__init__.py": "",
        "tasks/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tasks import b\n",
        "tasks/b.py": "def f():\n    from .a import g\n    import reference_backend.app\n    import users.x\n",
        "users/__init__.py": "",
        "users/x.py": "",
        "reference_backend/__init__.py": "",
        "reference_backend/app.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    global ROOT
    saved = ROOT
    ROOT = tmp_path
    try:
        modules = project_modules(tmp_path)
        graph = import_graph(modules)
        assert find_cycles(graph) == [["tasks.a", "tasks.b"]]
        bad = layer_violations(graph, modules)
    finally:
        ROOT = saved
    assert any("tasks.b imports reference_backend.app" in b for b in bad)
    assert any("tasks.b imports users.x" in b and "against the order" in b for b in bad)
    assert len(bad) == 2
