"""The project's own import graph, read from the source with ``ast`` (nothing is imported):
which ``mura_lib`` modules each module imports, at the top or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "mura_lib"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "static" not in path.parts}


def graph(*, parents: bool = False) -> dict[str, set[str]]:
    """``{module: {project modules it imports}}``; ``from . import x`` counts as importing
    ``mura_lib.x`` (and the package ``mura_lib`` itself, whose ``__init__`` runs first).

    With ``parents``, importing ``a.b.c`` also counts as importing the packages ``a`` and
    ``a.b``, whose ``__init__`` files Python runs first: what runs, rather than what a module names.
    """
    known = modules()
    edges = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found = {c for c in candidates if c in known}
            if parents:
                found |= {".".join(c.split(".")[:i]) for c in found for i in range(1, c.count(".") + 1)}
            edges[name] |= found - {name}
    return edges


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in edges[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself, with one path back to it (the package ``__init__``,
    which every submodule import runs first, is left out: it imports only numerics)."""
    found = []
    for start in edges:
        if start == "mura_lib":
            continue
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for target in edges[node] - {"mura_lib"}:
                if target == start:
                    found.append(path + [start])
                    stack = []
                    break
                if target not in seen:
                    seen.add(target)
                    stack.append((target, path + [target]))
    return found
