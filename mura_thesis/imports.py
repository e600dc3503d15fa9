"""The project's own import graph, read from the source with ``ast`` (nothing is imported): which
modules of ``mura_lib`` and ``mura_thesis`` each module imports, at the top or inside a function.

A chapter's key covers the source of the modules its code can run (:func:`chapter_modules`), so
that editing a module re-executes only the chapters that reach it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGES = ("mura_lib", "mura_thesis")
ROOT = Path(__file__).resolve().parent.parent  # the folder that holds both packages


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    """``{module name: source file}`` of the packages (their ``static`` folders left out)."""
    return {
        module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
        if "static" not in path.relative_to(root).parts
    }


def imported(tree: ast.AST, package: str, known) -> set[str]:
    """The modules of ``known`` that the statements of ``tree`` import; ``package`` is where a
    relative import starts (the module's own package).  ``from a import b`` counts as importing
    ``a.b`` where that is a module, else ``a``."""
    found = set()
    for node in ast.walk(tree):
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
        found |= {c for c in candidates if c in known}
    return found


def _with_parents(names: set[str]) -> set[str]:
    """Importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` first."""
    return names | {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)}


def graph(*, parents: bool = False, root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    """``{module: {project modules it imports}}``; ``from . import x`` counts as importing
    ``package.x`` (and the package itself, whose ``__init__`` runs first).

    With ``parents``, importing ``a.b.c`` also counts as importing the packages ``a`` and
    ``a.b``, whose ``__init__`` files Python runs first: what runs, rather than what a module names.
    The source is parsed once per process for as long as no file changes (every chapter's key
    reads the same graph).
    """
    known = modules(root, packages)
    files = tuple((name, str(path), *_stamp(path)) for name, path in known.items())
    return {name: set(targets) for name, targets in _parsed(files, parents).items()}


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_mtime_ns, status.st_size


@functools.lru_cache(maxsize=16)
def _parsed(files: tuple, parents: bool) -> dict[str, frozenset]:
    """The graph of ``files`` (``(module, path, mtime, size)`` each), keyed by their stamps."""
    known = {name: Path(path) for name, path, *_ in files}
    edges = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = imported(ast.parse(path.read_text()), package, known)
        edges[name] = frozenset((_with_parents(found) if parents else found) - {name})
    return edges


def reachable(edges: dict[str, set[str]], start) -> set[str]:
    """Every module reachable from ``start`` (a name or several), the start excluded unless a
    path leads back to it."""
    seen, todo = set(), [start] if isinstance(start, str) else list(start)
    while todo:
        for target in edges[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def chapter_modules(code: str, root: Path = ROOT) -> dict[str, Path]:
    """``{module: source file}`` of every project module that a chapter's code can run: those it
    imports, what they import in turn (inside functions too), and the packages' ``__init__``.

    ``code`` is the chapter's code cells joined; IPython's magics and shell lines are skipped.
    """
    lines = [line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))]
    known = modules(root)
    edges = graph(parents=True, root=root)
    start = _with_parents(imported(ast.parse("\n".join(lines)), "", known))
    names = start | reachable(edges, start)
    return {name: known[name] for name in sorted(names)}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself, with one path back to it (a package ``__init__``,
    which every submodule import runs first, is left out)."""
    found = []
    for start in edges:
        if start in PACKAGES:
            continue
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for target in edges[node] - set(PACKAGES):
                if target == start:
                    found.append(path + [start])
                    stack = []
                    break
                if target not in seen:
                    seen.add(target)
                    stack.append((target, path + [target]))
    return found
