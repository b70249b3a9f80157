"""The README and docs/ tell the truth about what they name: every relative link resolves, every
`roost <command>` exists (its --help exits 0), every `make <target>` is defined, and every
params key named (`section.key...`) is in params.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ml.cli import build_parser, main
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
ROOST = re.compile(r"\broost ([a-z][a-z-]*)")
MAKE = re.compile(r"\bmake ([a-z][a-z-]*)")
FILE_TYPES = {"py", "md", "json", "jsonl", "csv", "yaml", "parquet", "duckdb", "png", "html", "safetensors", "txt"}
CODE = re.compile(r"`([^`\n]+)`|```[a-z]*\n(.*?)```", re.S)


def texts() -> dict[Path, str]:
    return {p: p.read_text() for p in DOCS}


def code_spans(text: str) -> list[str]:
    """What the text shows as code: inline spans and fenced blocks."""
    return [a or b for a, b in CODE.findall(text)]


def test_there_are_docs_to_check():
    assert len(DOCS) >= 2 and all(p.exists() for p in DOCS)


def test_every_relative_link_resolves():
    broken = []
    for path, text in texts().items():
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web page, mail, or an anchor in the same page
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
    assert broken == []


def test_every_roost_command_named_exists(capsys):
    named = {cmd for text in texts().values() for span in code_spans(text) for cmd in ROOST.findall(span)}
    known = set(next(a for a in build_parser()._actions if a.dest == "command").choices)
    assert named and named <= known, f"named but not commands: {sorted(named - known)}"
    for cmd in sorted(named):
        with pytest.raises(SystemExit) as done:
            main([cmd, "--help"])
        assert done.value.code == 0, cmd
    capsys.readouterr()


def test_every_make_target_named_is_defined():
    makefile = (REPO / "Makefile").read_text()
    defined = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    named = {t for text in texts().values() for span in code_spans(text) for t in MAKE.findall(span)}
    assert named and named <= defined, f"named but not in the Makefile: {sorted(named - defined)}"


def _has(params: dict, dotted: str) -> bool:
    """``section.key.sub`` in params.yaml, in the section itself or in one of its profiles."""
    section, *keys = dotted.split(".")
    nodes = [params[section], *((params[section].get("profiles") or {}).values())]
    for node in nodes:
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return True
    return False


def test_every_params_key_named_exists():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    sections = sorted((k for k in params if isinstance(params[k], dict)), key=len, reverse=True)
    key = re.compile(r"(?<![\w/.-])(" + "|".join(map(re.escape, sections)) + r")((?:\.[a-z_][a-z0-9_]*)+)(?![\w/-])")
    named, missing = set(), []
    for path, text in texts().items():
        for span in code_spans(text):
            for section, rest in key.findall(span):
                if rest.rsplit(".", 1)[-1] in FILE_TYPES:
                    continue  # a file name (raw_locations.duckdb), not a key
                dotted = section + rest
                named.add(dotted)
                if not _has(params, dotted):
                    missing.append(f"{path.relative_to(REPO)}: {dotted}")
    assert named and missing == []
