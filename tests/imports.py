"""The project's import graph, read from the source (ast; nothing is imported or run). The
closure of a stage's code is ``assets.code``'s, the one definition that dvc.yaml's code deps and
the assets' code versions share."""

from __future__ import annotations

from pathlib import Path

from assets.code import PACKAGES, REPO, asset_modules, closure, code_deps, imported_files, module_file

__all__ = ["PACKAGES", "REPO", "asset_modules", "closure", "code_deps", "imported_files", "module_file"]


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges(root: Path = REPO) -> set[tuple[str, str]]:
    """(importer, imported) module pairs over every project file, every import counted."""
    edges = set()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for target in imported_files(path, root):
                a, b = module_name(path, root), module_name(target, root)
                if a != b and not a.startswith(b + "."):  # a module's own package __init__ is not an edge
                    edges.add((a, b))
    return edges


def circles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
