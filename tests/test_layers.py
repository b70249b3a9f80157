"""The layers only point down: every project import (module level or inside a function, read
from the source by ``tests.imports``) goes to a lower layer or stays in its own, no import
circles, and ``ml/train`` and ``ml/eval`` stand beside each other without importing each
other. Plus the size limits that keep modules and functions readable."""

import ast

import pytest

from tests.imports import PACKAGES, REPO, circles, import_edges

# Lowest first; a module belongs to the first layer one of whose prefixes it starts with.
LAYERS = [
    ("ml", "ml.config", "ml.paths", "ml.store", "ml.timing", "ml.landing", "ml.settings"),
    ("ml.geo",),
    ("ml.data",),
    ("ml.privacy",),
    ("ml.models",),
    ("ml.train", "ml.eval"),  # beside each other: neither imports the other
    ("ml.refine",),
    ("ml.bundle", "ml.model_card", "ml.checks"),
    ("ml.predict",),
    ("ml.stages",),
    ("ml.serve",),
    ("ml.cli",),
    # what every asset imports
    ("assets.code", "assets.resources", "assets.deployment", "assets.metadata", "assets.history"),
    ("assets",),
    ("orchestration",),
]
SIBLINGS = [("ml.train", "ml.eval")]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int:
    """The layer of the longest prefix naming ``module``."""
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if _within(module, p) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise AssertionError(f"{module}: in no layer of tests/test_layers.py; add it")
    return best


def violations(edges) -> list[str]:
    bad = []
    for a, b in sorted(edges):
        if layer_of(b) > layer_of(a):
            bad.append(f"{a} imports {b}, a higher layer")
        for x, y in SIBLINGS:
            if (_within(a, x) and _within(b, y)) or (_within(a, y) and _within(b, x)):
                bad.append(f"{a} imports {b}: {x} and {y} stand beside each other")
    return bad + [f"import circle: {' -> '.join(c)}" for c in circles(edges)]


def test_imports_point_down_with_no_circles():
    assert violations(import_edges()) == []


def test_the_check_finds_an_upward_import_a_sibling_import_and_a_circle():
    edges = {
        ("ml.geo.cells", "ml.predict"),
        ("ml.train.geocell", "ml.eval.metrics"),
        ("ml.data.a", "ml.data.b"),
        ("ml.data.b", "ml.data.a"),
        ("assets.images", "ml.stages.captions"),
    }
    found = violations(edges)
    assert "ml.geo.cells imports ml.predict, a higher layer" in found
    assert any(v.startswith("ml.train.geocell imports ml.eval.metrics: ml.train and ml.eval") for v in found)
    assert "import circle: ml.data.a -> ml.data.b" in found
    assert len(found) == 3  # assets -> ml.stages points down


def _sources():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("limit", [400])
def test_no_file_over_400_lines(limit):
    long = {str(p.relative_to(REPO)): n for p in _sources() if (n := len(p.read_text().splitlines())) > limit}
    assert long == {}


def test_no_function_over_80_lines():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert long == []
