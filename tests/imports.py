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
