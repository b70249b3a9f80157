"""The project's import graph, read from the source (ast; nothing is imported or run).

Every ``import`` statement counts, at module level or inside a function, so that a module's
closure is everything its code can load. Only the project's own packages are followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ml", "assets", "orchestration")


def module_file(name: str, root: Path = REPO) -> Path | None:
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    return None


def imported_files(path: Path, root: Path = REPO) -> set[Path]:
    """Project files that ``path`` imports (the modules and their packages' ``__init__``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    files = set()
    for name in names:
        parts = name.split(".")
        if parts[0] not in PACKAGES:
            continue
        for i in range(1, len(parts) + 1):
            found = module_file(".".join(parts[:i]), root)
            if found:
                files.add(found)
    return files


def closure(path: Path, root: Path = REPO) -> set[Path]:
    """``path`` and every project file it imports, transitively."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(imported_files(p, root))
    return seen


def asset_modules(root: Path = REPO) -> dict[str, Path]:
    """Asset name -> the file that defines it (a function decorated with ``@dg.asset``)."""
    found = {}
    for path in sorted((root / "assets").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                for d in node.decorator_list:
                    target = d.func if isinstance(d, ast.Call) else d
                    if isinstance(target, ast.Attribute) and target.attr == "asset":
                        found[node.name] = path
    return found


def code_deps(asset: str, root: Path = REPO) -> set[str]:
    """The files a stage's code is made of, relative to the root (empty ``__init__`` left out)."""
    files = closure(asset_modules(root)[asset], root)
    return {str(p.relative_to(root)) for p in files if p.name != "__init__.py" or p.read_text().strip()}


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
