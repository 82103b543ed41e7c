"""docs/architecture.md stays true of the code: read off the sources, not trusted.

- a graph's view comes from ``GraphView.of`` (no module builds a ``GraphView(...)`` itself);
- code outside a room (a package) imports neither its private modules nor its private names;
- an ``__all__`` names public things, and a plain module's ``__all__`` only what it defines;
- every path the page names exists, every package and top-level module is on its module map, and
  every module a map row names (in backticks, after the package) exists in that package.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import REPO

ROOTS = {"kdsnn": "kdsnn", "export": "kdsnn.export", "deploy": "kdsnn.deploy"}  # folder → import name
PAGE = REPO / "docs" / "architecture.md"


def _modules() -> dict[str, Path]:
    """Every module of the package, by its import name."""
    out = {}
    for folder, name in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([name, *parts])] = path
    return out


MODULES = _modules()


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, names) of every ``from … import …`` in ``path``."""
    found = []
    pkg = _package(module, path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def test_no_module_builds_a_graph_view_itself() -> None:
    built = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "GraphView":
                built.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert built == [], f"use GraphView.of(graph): {built}"


def _room(module: str) -> str:
    """The package a module belongs to (a package is its own room)."""
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def test_no_private_module_or_name_is_imported_across_rooms() -> None:
    crossing = []
    for module, path in MODULES.items():
        here = _room(module)
        for target, names in _imports(module, path):
            if target not in MODULES:
                continue
            if any(_private(p) for p in target.split(".")) and _room(target) != here:
                crossing.append(f"{module} imports the private module {target}")
            for n in names:
                sub = f"{target}.{n}"
                owner = _room(sub) if sub in MODULES else _room(target)
                if _private(n) and owner != here:
                    crossing.append(f"{module} imports the private name {sub}")
    assert crossing == []


def test_all_names_public_things_the_module_holds() -> None:
    problems = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        for n in tree.body:
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets):
                names = [e.value for e in n.value.elts]
                problems += [f"{module}: {x} is private" for x in names if x.startswith("_")]
                if path.name != "__init__.py":
                    problems += [f"{module}: re-exports {x}" for x in names if x not in defined]
    assert problems == []


def _page() -> str:
    return PAGE.read_text()


def test_every_path_the_page_names_exists() -> None:
    """Paths are the repository's (``../`` ones lie beside it: the project's shared design notes)."""
    missing = []
    for token in re.findall(r"`([^`\s]+)`", _page()):
        path = token.split(":")[0]
        if "/" not in path or path.startswith(("http", "--", "..")) or "*" in path or "<" in path:
            continue
        if not (REPO / path).exists():
            missing.append(token)
    assert missing == []


def _map_rows() -> list[tuple[list[str], str]]:
    """The module map's rows: (paths in the first cell, the second cell)."""
    rows = []
    for line in _page().split("## Module map", 1)[1].split("\n## ", 1)[0].splitlines():
        cells = line.split("|")
        if len(cells) >= 4 and "`" in cells[1]:
            rows.append((re.findall(r"`([^`]+)`", cells[1]), cells[2]))
    return rows


def test_the_module_map_covers_every_package_and_module() -> None:
    named = {p.rstrip("/") for paths, _ in _map_rows() for p in paths}
    absent = []
    for path in MODULES.values():
        rel = path.relative_to(REPO)
        if path.name == "__init__.py":
            if len(rel.parts) > 2 and str(rel.parent) not in named:  # a room: its folder is on the map
                absent.append(str(rel.parent))
        elif len(rel.parts) == 2 and str(rel) not in named and rel.name != "__main__.py":
            absent.append(str(rel))  # a top-level module of kdsnn/, export/ or deploy/
    assert absent == []


PACKAGE_ROWS = [(paths[0], text) for paths, text in _map_rows()
                if len(paths) == 1 and (REPO / paths[0] / "__init__.py").exists()]


@pytest.mark.parametrize("package,text", PACKAGE_ROWS, ids=[p for p, _ in PACKAGE_ROWS])
def test_the_modules_a_package_row_names_exist(package, text) -> None:
    """A package's row names its modules in backticks (functions and commands written otherwise)."""
    words = re.findall(r"`([a-z_]+)`", text)
    assert words, "a package's row names its modules"
    assert [w for w in words if not (REPO / package / f"{w}.py").exists()] == []
