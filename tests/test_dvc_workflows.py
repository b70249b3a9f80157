"""The DVC side, for real, on the smoke profile in a temporary copy of the repository: `make
ablations`' mechanism (DVC experiments with -S overrides), an edited function marks exactly
its stages stale, and the round trip (commit, push, pull, status, exp run reruns exactly what
a changed param touches, through the stages' own commands)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, STAGES

pytestmark = pytest.mark.xdist_group("dvc")  # one worker runs them all: they share the repo fixture
DVC = REPO / ".venv-dvc" / "bin" / "dvc"


def sh(cmd: list, cwd: Path, env: dict, timeout: int = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(smoke_chain, tmp_path_factory):
    """The working tree (tracked and new files) as a fresh git repo on the smoke profile, with a
    local DVC remote. Its outputs are the shared smoke chain's (the same code and params), taken
    into DVC by `dvc commit`, so that no second chain runs; the stages that the tests below
    change run for real, through their `dvc.yaml` commands."""
    if not DVC.exists():
        pytest.fail(f"{DVC} missing: `make test` installs DVC's environment first")
    smoke, _ = smoke_chain
    base = tmp_path_factory.mktemp("dvcrepo")
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
    env.pop("ROOST_ROOT", None)
    sh(["git", "init", "-q"], root, env)
    sh([DVC, "remote", "add", "--local", "-f", "-d", "test", str(base / "remote")], root, env)
    sh([DVC, "commit", "-f"], root, env)
    assert json.loads(sh([DVC, "status", "--json"], root, env).strip() or "{}") == {}
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "smoke copy, committed to DVC"], root, env)
    return root, env


def test_ablations_run_as_dvc_experiments(repo):
    root, env = repo
    out = sh(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "ml.eval.ablations", "--variants", "no_refinement"], root, env
    )
    table = (root / "data" / "ablations" / "ablations.md").read_text()
    assert "no_refinement" in table and "| holdout | median_km |" in table
    found = json.loads((root / "data" / "ablations" / "ablations.json").read_text())["variants"]
    assert set(found) == {"no_refinement"}
    full = json.loads((root / "data" / "benchmark_report" / "metrics.json").read_text())
    # the variants really ran: without refinement the guesses are cell centroids, other figures
    assert found["no_refinement"]["holdout"]["n"] == full["holdout"]["n"]
    assert (
        found["no_refinement"]["holdout"]["intervals"]["median_km"]["low"]
        <= found["no_refinement"]["holdout"]["median_km"]
    )
    assert set(re.findall(r"Running stage '(\w+)'", out)) == {"model_bundle", "benchmark_report"}
    row = next(line for line in table.splitlines() if line.startswith("| holdout | median_km |"))
    assert re.search(r"[+-]\d+\.\d\d \|", row)  # a difference to the full model in each variant's cell


def test_editing_one_function_makes_exactly_its_stages_stale(repo):
    """A changed body of ``refine_guess`` (ml/refine/refine.py) is a changed dep of exactly the
    stages whose code imports it; ``dvc status`` says so, and is clean again once it is undone."""
    from tests.imports import code_deps

    root, env = repo
    assert json.loads(sh([DVC, "status", "--json"], root, env).strip() or "{}") == {}
    path = root / "ml" / "refine" / "refine.py"
    original = path.read_text()
    edited = original.replace(
        "    probs = np.asarray(probs, np.float64)\n", "    probs = np.asarray(probs, np.float64) + 0.0\n"
    )
    assert edited != original
    try:
        path.write_text(edited)
        status = json.loads(sh([DVC, "status", "--json"], root, env))
    finally:
        path.write_text(original)
    changed = {stage for stage, entries in status.items() if "ml/refine/refine.py" in json.dumps(entries)}
    assert changed == set(status) == {s for s in STAGES if "ml/refine/refine.py" in code_deps(s)}
    assert changed == {"benchmark_report"}  # the bundle holds refine's params, not its code
    assert json.loads(sh([DVC, "status", "--json"], root, env).strip() or "{}") == {}


def test_dvc_round_trip(repo):
    root, env = repo
    sh([DVC, "push"], root, env)
    shutil.rmtree(root / ".dvc" / "cache")
    for stage in STAGES:
        for p in (root / "data" / stage).glob("*"):
            if p.name not in ("metrics.json", "error_curve_holdout.csv"):  # git's, not DVC's cache
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert json.loads(sh([DVC, "status", "--json"], root, env)) != {}  # outputs gone, not in the cache
    sh([DVC, "pull"], root, env)
    assert json.loads(sh([DVC, "status", "--json"], root, env).strip() or "{}") == {}
    out = sh([DVC, "exp", "run", "-S", "refine.top_k=3"], root, env)
    ran = set(re.findall(r"Running stage '(\w+)'", out))
    assert ran == {"model_bundle", "benchmark_report"}, out[-2000:]  # nothing upstream of the params' users
