"""No import cycles inside the core or any installed opsloop plugin package.

Module A importing B while B imports A (directly or through others, at the top of a file or
inside a function) is a cycle: it works only in some import orders and hides a piece of
code that wants a module of its own. Imports under ``if TYPE_CHECKING:`` never run and do
not count. The modules are read as text (``ast``), never imported.
"""

from __future__ import annotations

import ast
import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

import pytest


def packages() -> list[str]:
    """The core and the top-level package of every installed ``opsloop`` entry point."""
    found = {"opsloop"}
    for ep in entry_points(group="opsloop"):
        found.add(ep.value.split(":")[0].split(".")[0])
    return sorted(found)


def modules(package: str) -> dict[str, Path]:
    """Module name -> source file, for every ``.py`` file of ``package``."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not a package"
    found: dict[str, Path] = {}
    for root in spec.submodule_search_locations:
        for path in Path(root).rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imports there never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports when it runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
            targets += [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
    found = set()
    for target in targets:
        while target and target not in known:  # `import a.b.c` for a package a.b
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "; ".join(edges)


def test_the_cycle_finder_finds_cycles_through_function_level_imports(tmp_path: Path) -> None:
    files = {
        "a.py": "from pkg import b\nfrom pkg.c import thing\n",
        "b.py": "def later():\n    from . import a\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
    }
    known = {f"pkg.{name[:-3]}": tmp_path / name for name in files}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert graph == {"pkg.a": {"pkg.b", "pkg.c"}, "pkg.b": {"pkg.a"}, "pkg.c": set()}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


@pytest.mark.parametrize("package", packages())
def test_no_import_cycles(package: str) -> None:
    known = modules(package)
    graph = {name: imports(name, path, known) for name, path in known.items()}
    found = [describe(c, graph) for c in cycles(graph)]
    assert not found, f"import cycles in {package}: " + " | ".join(found)


def test_the_core_and_the_plugins_were_all_checked() -> None:
    assert {"opsloop", "opsloop_fastapi", "opsloop_mlflow"} <= set(packages())
