"""One versioned history, for real, in a copy of the repository on the smoke profile: a
materialization through Dagster (not DVC) ends committed in DVC with its data version equal to
dvc.lock's hash; an edited function makes the same stages changed in `dvc status` as assets
whose code_version changed; two runs at once are both recorded; a scheduled run ends as a DVC
experiment; a run killed mid-step leaves DVC consistent and the next run recovers."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from datetime import datetime

import dagster as dg
import pytest
import yaml

from assets.code import code_version
from assets.history import EXPERIMENT_TAG, dvc_md5, locked_outs
from tests.conftest import REPO, STAGES
from tests.dvcrepo import DVC, dvc_repo, dvc_status, materialize_command, sh

pytestmark = pytest.mark.xdist_group("dvc")  # the worker that runs the other DVC tests


@pytest.fixture(scope="module")
def repo(smoke_chain, tmp_path_factory):
    return dvc_repo(smoke_chain[0], tmp_path_factory.mktemp("history"))


def materializations(env: dict, asset: str) -> list:
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
        return [r.event_log_entry.asset_materialization for r in records]


def cache_is_sound(root) -> list[str]:
    """Cache files whose content does not hash to their name (a half-written object)."""
    bad = []
    for path in (root / ".dvc" / "cache" / "files" / "md5").rglob("*"):
        if path.is_file():
            name = path.parent.name + path.name
            content = path.read_bytes()
            md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
            if name.endswith(".dir"):
                ok = md5 == name[: -len(".dir")] and isinstance(json.loads(content), list)
            else:
                ok = md5 == name
            if not ok:
                bad.append(str(path))
    return bad


def test_a_dagster_materialization_ends_recorded_in_dvc(repo):
    """model_bundle with another refine.top_k, materialized by Dagster's CLI outside DVC: its
    stage is clean in `dvc status`, dvc.lock holds the new hash of the new files, and the
    materialization's data_version is that hash."""
    root, env = repo
    before = locked_outs(_paths(root), "model_bundle")["data/model_bundle"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["refine"]["top_k"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(materialize_command("model_bundle"), root, env)
    after = locked_outs(_paths(root), "model_bundle")["data/model_bundle"]
    assert after != before and after == dvc_md5(root / "data" / "model_bundle")
    assert "model_bundle" not in dvc_status(root, env)
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["model_bundle"]
    assert lock["params"]["params.yaml"]["refine"]["top_k"] == 2  # the params that ran
    event = materializations(env, "model_bundle")[0]
    assert event.tags["dagster/data_version"] == after
    assert event.tags["dagster/code_version"] == code_version("model_bundle", root)
    assert event.metadata["dvc_recorded"].value == "dvc commit"
    head = sh(["git", "rev-parse", "HEAD"], root, env).strip()
    assert event.metadata["git_commit"].value in (head, head + "-dirty")


def test_an_edited_function_changes_the_same_stages_in_dvc_and_dagster(repo):
    root, env = repo
    edited_file = "ml/train/loop.py"
    path = root / edited_file
    original = path.read_text()
    before = {s: code_version(s, root) for s in STAGES}
    edited = original.replace("\n    return ", "\n    return 0 or ", 1)
    assert edited != original
    try:
        path.write_text(edited)
        after = {s: code_version(s, root) for s in STAGES}
        status = dvc_status(root, env)
    finally:
        path.write_text(original)
    in_dvc = {stage for stage, entries in status.items() if edited_file in json.dumps(entries)}
    in_dagster = {s for s in STAGES if before[s] != after[s]}
    assert in_dvc == in_dagster
    assert in_dvc and in_dvc != set(STAGES)
    assert {s: code_version(s, root) for s in STAGES} == before  # undone: the same versions again


def test_two_runs_at_once_are_both_recorded(repo):
    """Two materializations of captions and one of geocells, started together: all succeed
    (DVC's lock waited for, never failed on), each is recorded, and dvc.lock ends matching the
    files in data/."""
    root, env = repo
    seen = {a: len(materializations(env, a)) for a in ("captions", "geocells")}
    commands = [materialize_command("captions"), materialize_command("captions"), materialize_command("geocells")]
    procs = [subprocess.Popen(c, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in commands]
    outputs = [p.communicate(timeout=600)[0].decode() for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
        assert "Unable to acquire lock" not in out
    assert len(materializations(env, "captions")) == seen["captions"] + 2
    assert len(materializations(env, "geocells")) == seen["geocells"] + 1
    status = dvc_status(root, env)
    assert "captions" not in status and "geocells" not in status, status
    for asset in ("captions", "geocells"):
        assert locked_outs(_paths(root), asset)[f"data/{asset}"] == dvc_md5(root / "data" / asset)
        for event in materializations(env, asset)[:2]:
            version = event.tags["dagster/data_version"]
            assert (root / ".dvc" / "cache" / "files" / "md5" / version[:2] / version[2:]).exists()


def test_a_scheduled_run_ends_as_a_dvc_experiment(repo):
    """The schedule's own run request, run as its job (its last assets, the report and the gate):
    `dvc exp show` lists the run under the schedule's name, with the report's metrics."""
    from orchestration.definitions import defs

    root, env = repo
    schedule = defs.get_schedule_def("retrain")
    # `with` the context too: evaluate_tick opens a second instance from the first's ref; left open,
    # its later garbage collection puts the closed first instance's storage back into Dagster's
    # context variable, and the next dg.materialize in this worker fails ("undefined DagsterInstance
    # weakref": CI's test_report failure)
    when = datetime(2026, 12, 6, 3, 0)
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context,
    ):
        request = schedule.evaluate_tick(context).run_requests[0]
    name = request.tags[EXPERIMENT_TAG]
    assert name == "retrain-20261206-0300"
    script = (
        "import dagster as dg, json, sys\n"
        "from orchestration.definitions import defs\n"
        "job = defs.get_job_def('roost_chain')\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    r = job.execute_in_process(instance=instance, tags=json.loads(sys.argv[1]),\n"
        "                               asset_selection=[dg.AssetKey('benchmark_report'), dg.AssetKey('champion')])\n"
        "    assert r.success\n"
    )
    sh([str(REPO / ".venv" / "bin" / "python"), "-c", script, json.dumps(dict(request.tags))], root, env)
    shown = json.loads(sh([DVC, "exp", "show", "--json"], root, env))
    found = [rev for rev in _revs(shown) if rev.get("name") == name]
    assert found, f"{name} not in dvc exp show"
    metrics = found[0]["data"]["metrics"]["data/benchmark_report/metrics.json"]["data"]
    on_disk = json.loads((root / "data" / "benchmark_report" / "metrics.json").read_text())
    assert metrics["holdout"]["n"] == on_disk["holdout"]["n"] > 0
    assert metrics["holdout"]["median_km"] == on_disk["holdout"]["median_km"]
    branch = sh(["git", "log", "--oneline"], root, env)
    assert len(branch.strip().splitlines()) == 1  # nothing landed on the user's branch


def test_a_run_killed_mid_step_leaves_dvc_consistent(repo):
    """SIGKILL while geocell_model trains: DVC shows the stage changed or clean, never a
    half-written object in the cache; the next run recovers and ends recorded."""
    root, env = repo
    lock = root / "data" / "cache" / "locks" / "geocell_model.lock"
    lock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        materialize_command("geocell_model"),
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the step ended before it could be killed"
    time.sleep(1.0)  # inside the step: training
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    entries = dvc_status(root, env).get("geocell_model", [])  # changed or clean, and readable
    assert all(set(e) <= {"changed outs", "changed deps"} for e in entries), entries
    assert cache_is_sound(root) == []
    sh(materialize_command("geocell_model"), root, env)
    assert "geocell_model" not in dvc_status(root, env)
    assert locked_outs(_paths(root), "geocell_model")["data/geocell_model"] == dvc_md5(root / "data" / "geocell_model")
    assert cache_is_sound(root) == []


def _paths(root):
    from ml.paths import Paths

    return Paths(root)


def _revs(value):
    """Every mapping with a ``rev`` anywhere in ``dvc exp show --json``'s output."""
    if isinstance(value, dict):
        if "rev" in value:
            yield value
        for v in value.values():
            yield from _revs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _revs(v)
