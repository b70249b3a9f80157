"""A copy of the repository as a fresh git + DVC repo on the smoke profile, for the tests that
run DVC and Dagster for real against it (tests/test_dvc_workflows.py, tests/test_history.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, STAGES

DVC = REPO / ".venv-dvc" / "bin" / "dvc"
DAGSTER = REPO / ".venv" / "bin" / "dagster"


def sh(cmd: list, cwd: Path, env: dict, timeout: int = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout + done.stderr


def dvc_status(root: Path, env: dict) -> dict:
    return json.loads(sh([DVC, "status", "--json"], root, env).strip() or "{}")


def materialize_command(asset: str) -> list[str]:
    """The command a DVC stage runs, here run outside DVC: a plain Dagster materialization."""
    return [str(DAGSTER), "asset", "materialize", "-m", "orchestration.definitions", "--select", asset]


def dvc_repo(smoke: Path, base: Path) -> tuple[Path, dict]:
    """The working tree (tracked and new files) as a fresh git repo on the smoke profile, with a
    local DVC remote and its own DAGSTER_HOME. Its outputs are the shared smoke chain's (the
    same code and params), taken into DVC by `dvc commit`, so that no second chain runs; the
    stages that the tests change run for real, through their `dvc.yaml` commands or Dagster."""
    if not DVC.exists():
        pytest.fail(f"{DVC} missing: `make test` installs DVC's environment first")
    root = base / "repo"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / f)
    shutil.copy2(smoke / "params.yaml", root / "params.yaml")  # the chain's: smoke, ROOST_TEST_SEED
    for stage in STAGES:
        if (root / "data" / stage).exists():
            shutil.rmtree(root / "data" / stage)
        shutil.copytree(smoke / "data" / stage, root / "data" / stage)
    home = base / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
        "DAGSTER_HOME": str(home),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "ROOST_DVC": str(DVC),
    }
    for name in ("ROOST_ROOT", "DVC_STAGE", "DVC_ROOT"):
        env.pop(name, None)
    sh(["git", "init", "-q"], root, env)
    sh([DVC, "remote", "add", "--local", "-f", "-d", "test", str(base / "remote")], root, env)
    sh([DVC, "commit", "-f"], root, env)
    assert dvc_status(root, env) == {}
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "smoke copy, committed to DVC"], root, env)
    return root, env
