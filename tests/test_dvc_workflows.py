"""The DVC side, for real, on the smoke profile in a temporary copy of the repository: `make
ablations`' mechanism (DVC experiments with -S overrides) and the round trip (repro, push,
pull, status, exp run reruns exactly what a changed param touches)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DVC = REPO / ".venv-dvc" / "bin" / "dvc"
STAGES = ["raw_locations", "enriched_locations", "location_images", "captions", "geocells", "streetclip",
          "geocell_model", "prototypes", "model_bundle", "benchmark_report"]  # fmt: skip


def sh(cmd: list, cwd: Path, env: dict, timeout: int = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The working tree (tracked and new files) as a fresh git repo on the smoke profile, with a
    local DVC remote, reproduced once."""
    if not DVC.exists():
        pytest.fail(f"{DVC} missing: `make test` installs DVC's environment first")
    base = tmp_path_factory.mktemp("dvcrepo")
    root = base / "repo"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")  # fmt: skip
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / f)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["profile"] = "smoke"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    home = base / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "DAGSTER_HOME": str(home),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "ROOST_DVC": str(DVC)}  # fmt: skip
    env.pop("ROOST_ROOT", None)
    sh(["git", "init", "-q"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "smoke copy"], root, env)
    sh([DVC, "remote", "add", "--local", "-f", "-d", "test", str(base / "remote")], root, env)
    sh([DVC, "repro"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "reproduced"], root, env)
    return root, env


def test_ablations_run_as_dvc_experiments(repo):
    root, env = repo
    out = sh([str(REPO / ".venv" / "bin" / "python"), "-m", "ml.eval.ablations", "--variants",
              "one_hot_labels,no_refinement"], root, env)  # fmt: skip
    table = (root / "data" / "ablations" / "ablations.md").read_text()
    assert "one_hot_labels" in table and "no_refinement" in table and "| holdout | median_km |" in table
    found = json.loads((root / "data" / "ablations" / "ablations.json").read_text())["variants"]
    assert set(found) == {"one_hot_labels", "no_refinement"}
    full = json.loads((root / "data" / "benchmark_report" / "metrics.json").read_text())
    # the variants really ran: without refinement the guesses are cell centroids, other figures
    assert found["no_refinement"]["holdout"]["n"] == full["holdout"]["n"]
    assert (
        found["no_refinement"]["holdout"]["intervals"]["median_km"]["low"]
        <= found["no_refinement"]["holdout"]["median_km"]
    )
    assert "Running stage 'geocell_model'" in out and "Running stage 'model_bundle'" in out
    row = next(line for line in table.splitlines() if line.startswith("| holdout | median_km |"))
    assert re.search(r"[+-]\d+\.\d\d \|", row)  # a difference to the full model in each variant's cell


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
    out = sh([DVC, "exp", "run", "-S", "geocells.profiles.smoke.min_cell_size=7"], root, env)
    ran = set(re.findall(r"Running stage '(\w+)'", out))
    assert ran == {"geocells", "geocell_model", "prototypes", "model_bundle", "benchmark_report"}, out[-2000:]
