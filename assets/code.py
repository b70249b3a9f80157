"""What a stage's code is: the project files its asset module imports, transitively, read from
the source (ast; nothing is imported or run). One definition serves both tools: ``dvc.yaml``'s
code deps of a stage are exactly ``code_deps(asset)`` (tests/test_dvc_parity.py), and the
asset's Dagster ``code_version`` is a hash of the same files, so editing a function makes the
same stages changed in ``dvc status`` and the same assets "Unsynced" in the UI.

Every ``import`` statement counts, at module level or inside a function, so that a module's
closure is everything its code can load. Only the project's own packages are followed.
"""

from __future__ import annotations

import ast
import hashlib
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


def _is_asset_decorator(d: ast.expr) -> bool:
    target = d.func if isinstance(d, ast.Call) else d
    return isinstance(target, ast.Attribute) and target.attr == "asset"


def asset_modules(root: Path = REPO) -> dict[str, Path]:
    """Asset name -> the file that defines it (a function decorated with ``@dg.asset``)."""
    found = {}
    for path in sorted((root / "assets").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any(_is_asset_decorator(d) for d in node.decorator_list):
                found[node.name] = path
    return found


def package_data(path: Path) -> set[Path]:
    """The data folders beside a module (no Python inside: ``ml/models/configs``), which its code reads."""
    return {d for d in path.parent.iterdir() if d.is_dir() and d.name != "__pycache__" and not any(d.rglob("*.py"))}


def code_deps(asset: str, root: Path = REPO) -> set[str]:
    """The files a stage's code is made of, relative to the root (empty ``__init__`` left out),
    and the package-data folders of their packages."""
    files = closure(asset_modules(root)[asset], root)
    found = {p for p in files if p.name != "__init__.py" or p.read_text().strip()}
    found |= {d for p in files for d in package_data(p)}
    return {str(p.relative_to(root)) for p in found}


def code_version(asset: str, root: Path = REPO) -> str:
    """A hash of ``code_deps(asset)``: each file's name and bytes (a folder's files), in a fixed order."""
    digest = hashlib.sha256()
    for rel in sorted(code_deps(asset, root)):
        path = root / rel
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file() and "__pycache__" not in f.parts:
                digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
