"""The DVC side, for real, on the smoke profile in a temporary copy of the repository: `make
ablations`' mechanism (DVC experiments with -S overrides), an edited function marks exactly
its stages stale, and the round trip (commit, push, pull, status, exp run reruns exactly what
a changed param touches, through the stages' own commands)."""

from __future__ import annotations

import json
import re
import shutil

import dagster as dg
import pytest

from tests.conftest import REPO, STAGES
from tests.dvcrepo import DVC, dvc_repo, sh

pytestmark = pytest.mark.xdist_group("dvc")  # one worker runs them all: they share the repo fixture


@pytest.fixture(scope="module")
def repo(smoke_chain, tmp_path_factory):
    return dvc_repo(smoke_chain[0], tmp_path_factory.mktemp("dvcrepo"))


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
    assert set(re.findall(r"Running stage '(\w+)'", out)) == {"model_bundle", "benchmark_report", "champion"}
    row = next(line for line in table.splitlines() if line.startswith("| holdout | median_km |"))
    assert re.search(r"[+-]\d+\.\d\d \|", row)  # a difference to the full model in each variant's cell


def test_a_choice_on_val_runs_as_dvc_experiments(repo):
    """ml.eval.tune through DVC for real: the current guess rule's run (the workspace's own
    models: nothing retrains), every rule's val read from it, the pick recorded, test after."""
    from tests.conftest import TEST_SEED

    root, env = repo
    rules = ["top_cell", "min_expected_distance", "country_first"]
    cmd = [str(REPO / ".venv" / "bin" / "python"), "-m", "ml.eval.tune", "refine.guess", *rules]
    out = sh([*cmd, "--seeds", str(TEST_SEED)], root, env)
    assert out.index("val (refine.guess") < out.index("test (holdout), read after the pick")
    record = json.loads((root / "data" / "tuning" / "refine-guess.json").read_text())
    assert set(record["val"]) == set(record["test"]) == set(rules) and record["pick"] in rules
    on_disk = json.loads((root / "data" / "benchmark_report" / "metrics.json").read_text())
    current = record["current"]
    assert record["val"][current]["geoguessr"]["seeds"] == [pytest.approx(on_disk["val"]["geoguessr"])]
    assert record["test"][current]["median_km"]["seeds"] == [pytest.approx(on_disk["holdout"]["median_km"])]
    assert record["test_read_at"] >= record["picked_at"]


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
    assert changed == {"benchmark_report", "champion"}  # the bundle holds refine's params, not its code
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
    assert ran == {"model_bundle", "benchmark_report", "champion"}, out[-2000:]  # nothing upstream of refine's users
    # inside a DVC stage DVC records the outs; the asset's data_version is the hash DVC then wrote
    from assets.history import locked_outs
    from ml.paths import Paths

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("model_bundle")).asset_materialization
    assert event.metadata["dvc_recorded"].value == "by the DVC stage that runs it"
    assert event.tags["dagster/data_version"] == locked_outs(Paths(root), "model_bundle")["data/model_bundle"]
