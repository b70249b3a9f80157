"""One versioned history: every materialization of an asset, however its run started (the UI,
the schedule, the new-data sensor, a Kubernetes step pod or a ``dvc repro`` stage), ends with
its stage's outputs in DVC's cache and ``dvc.lock``, and tells Dagster the same version.

- **Recorded in DVC.** After the asset's step has written ``data/<asset>/``, ``dvc commit
  <stage>`` stores the outs in the cache and writes the deps/params/outs hashes of what ran into
  ``dvc.lock`` (and ``dvc push <stage>`` with ``automation.dvc_push``). Inside a ``dvc repro``
  or ``dvc exp run`` stage (DVC sets ``DVC_STAGE``) DVC records it itself after the command.
- **One writer at a time.** DVC's repository lock is taken by one process at a time: every DVC
  call here passes DVC's own ``--wait-for-lock`` (DVC's lock is the arbiter on one machine and
  on a shared volume alike; no Dagster instance setting is needed), bounded by
  ``automation.dvc_wait_s``. Two runs of the same asset would write the same folder: a file
  lock per stage (``data/cache/locks/<stage>.lock``, released by the kernel if the process
  dies) serialises write and commit, so the later run's files are the ones recorded.
- **Dagster knows the version.** The asset's ``code_version`` is ``assets.code.code_version``
  (the files of dvc.yaml's code deps); the materialization's ``data_version`` is the md5 that
  ``dvc.lock`` records for its out, with the git commit in its metadata.
- **Automated retrains are experiments.** A run tagged ``roost/experiment`` (the schedule's and
  the sensor's) ends, at the chain's last asset (``champion``), with ``dvc exp save -n <name>``: no commit
  lands on the user's branch, ``dvc exp show`` lists it with its metrics.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml

from assets.code import code_deps
from assets.resources import RoostResource
from ml.landing import AutomationConfig
from ml.paths import Paths

EXPERIMENT_TAG = "roost/experiment"  # set by the schedule and the sensor: the experiment's name
CHAIN_END = "champion"  # the chain's last asset (after the report): an automated run is saved after it
GIT_FALLBACK = {"NAME": "Roost", "EMAIL": "roost@localhost"}  # exp save's author where git knows none
DVC_CANDIDATES = (".venv-dvc/bin/dvc", "/opt/dvc/bin/dvc")  # make install's; the k8s image's


class HistoryError(RuntimeError):
    """The step's outputs are written but could not be recorded in DVC."""


def in_dvc_stage() -> bool:
    """True inside a command that ``dvc repro`` / ``dvc exp run`` runs: DVC records it after."""
    return bool(os.environ.get("DVC_STAGE"))


def is_dvc_repo(paths: Paths) -> bool:
    return (paths.root / ".dvc").is_dir() and (paths.root / "dvc.yaml").is_file()


def dvc_executable(paths: Paths) -> str:
    """``$ROOST_DVC``, else make install's DVC environment, the k8s image's, then PATH."""
    found = os.environ.get("ROOST_DVC") or next(
        (str(p) for p in (paths.resolve(c) for c in DVC_CANDIDATES) if p.exists()), None
    )
    found = found or shutil.which("dvc")
    if not found:
        raise HistoryError(
            f"{paths.root} is a DVC repository but no dvc was found: run `make install` (DVC goes to "
            ".venv-dvc/), or set ROOST_DVC to a dvc executable; the outputs are written, record them "
            "afterwards with `dvc commit`"
        )
    return found


def _git_identity(paths: Paths) -> dict[str, str]:
    """An author for ``dvc exp save``'s commit where git has none configured (a pod, a CI box)."""
    if os.environ.get("GIT_AUTHOR_EMAIL"):
        return {}
    try:
        email = subprocess.run(["git", "config", "user.email"], cwd=paths.root, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if email.returncode == 0 and email.stdout.strip():
        return {}
    return {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in GIT_FALLBACK.items()}


def run_dvc(paths: Paths, args: list[str], timeout_s: float) -> str:
    """One DVC command in the project root, waiting for DVC's repository lock (bounded)."""
    cmd = [dvc_executable(paths), "--wait-for-lock", *args]
    env = {**os.environ, **(_git_identity(paths) if args[0] == "exp" else {})}
    env.pop("DVC_STAGE", None)
    try:
        done = subprocess.run(cmd, cwd=paths.root, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise HistoryError(
            f"`dvc {' '.join(args)}` waited {timeout_s:.0f} s (automation.dvc_wait_s) for DVC's repository "
            f"lock: another DVC process (a long `dvc repro`?) holds it. The outputs are written; record them "
            f"with `dvc commit {args[-1]}` when it is done"
        ) from e
    if done.returncode:
        raise HistoryError(f"`dvc {' '.join(args)}` failed ({done.returncode}) in {paths.root}:\n{done.stderr[-2000:]}")
    return done.stdout


def stage_outs(paths: Paths, stage: str) -> list[str]:
    """The paths a stage writes, as dvc.yaml names them (outs, metrics, plots)."""
    spec = yaml.safe_load((paths.root / "dvc.yaml").read_text())["stages"][stage]
    listed = [o for key in ("outs", "metrics", "plots") for o in spec.get(key, [])]
    return [o if isinstance(o, str) else next(iter(o)) for o in listed]


def locked_outs(paths: Paths, stage: str) -> dict[str, str]:
    """Out path -> the md5 that ``dvc.lock`` records for ``stage`` (empty if it holds none)."""
    lock = paths.root / "dvc.lock"
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.exists() else {}
    return {o["path"]: o["md5"] for o in stages.get(stage, {}).get("outs", [])}


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dvc_md5(path: Path) -> str:
    """The md5 DVC 3 records for a file or a folder (a folder's: the md5 of its sorted
    ``[{"md5", "relpath"}]`` listing as JSON, plus ``.dir``), computed without DVC."""
    if path.is_file():
        return _file_md5(path)
    entries = sorted(
        ({"md5": _file_md5(p), "relpath": p.relative_to(path).as_posix()} for p in path.rglob("*") if p.is_file()),
        key=lambda e: e["relpath"],
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode(), usedforsecurity=False).hexdigest() + ".dir"


def data_version(outs: dict[str, str]) -> str:
    """A stage's data version: its out's md5 as dvc.lock has it (several outs: a hash of them)."""
    if len(outs) == 1:
        return next(iter(outs.values()))
    joined = "\n".join(f"{p}={m}" for p, m in sorted(outs.items()))
    return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()


def git_commit(paths: Paths, stage: str) -> str:
    """HEAD, with ``-dirty`` when the stage's code differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.root, capture_output=True, text=True, timeout=30)
        if head.returncode:
            return "not a git checkout"
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", *sorted(code_deps(stage, paths.root))],
            cwd=paths.root,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git did not answer)"
    return head.stdout.strip() + ("-dirty" if changed else "")


@contextmanager
def stage_lock(paths: Paths, stage: str) -> Iterator[None]:
    """One writer of a stage's outs at a time, across processes (an flock: freed if it dies)."""
    path = paths.cache_dir("locks") / f"{stage}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def record(paths: Paths, stage: str, cfg: AutomationConfig) -> tuple[dict[str, str], str]:
    """Record the stage's outs in DVC where this is the recorder; (out -> md5, how recorded)."""
    if not is_dvc_repo(paths):
        outs = {o: dvc_md5(paths.root / o) for o in _outs_or_asset_dir(paths, stage)}
        return outs, "not a DVC repository: hashed, not recorded"
    if in_dvc_stage():
        return {o: dvc_md5(paths.root / o) for o in stage_outs(paths, stage)}, "by the DVC stage that runs it"
    run_dvc(paths, ["commit", "--force", "--no-relink", "--quiet", stage], cfg.dvc_wait_s)
    how = "dvc commit"
    if cfg.dvc_push:
        run_dvc(paths, ["push", "--quiet", stage], cfg.dvc_wait_s)
        how += " + dvc push"
    return locked_outs(paths, stage), how


def _outs_or_asset_dir(paths: Paths, stage: str) -> list[str]:
    if (paths.root / "dvc.yaml").is_file():
        return stage_outs(paths, stage)
    return [str(paths.asset_dir(stage).relative_to(paths.root))]


def experiment_name(tag: str) -> str:
    """A DVC experiment name (a git ref name) from a run's tag."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in tag).strip("-.")
    return cleaned or "retrain"


def save_experiment(paths: Paths, name: str, cfg: AutomationConfig) -> str:
    """``dvc exp save -n name``: the workspace (dvc.lock, params, metrics) as an experiment."""
    if not is_dvc_repo(paths):
        return "not a DVC repository: no experiment saved"
    run_dvc(paths, ["exp", "save", "--force", "--name", name], cfg.dvc_wait_s)
    return name


def versioned(fn: Callable[..., dg.MaterializeResult]) -> Callable[..., dg.MaterializeResult]:
    """Under ``@dg.asset(code_version=code_version(name))``: the asset's step, then its record."""
    stage = fn.__name__

    @functools.wraps(fn)
    def asset(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
        paths, cfg = roost.paths(), roost.config(AutomationConfig)
        with stage_lock(paths, stage):
            result = fn(context, roost)
            outs, how = record(paths, stage, cfg)
        version = data_version(outs)
        metadata = {
            **(result.metadata or {}),
            "dvc_md5": version,
            "dvc_outs": dg.MetadataValue.json(outs),
            "dvc_recorded": how,
            "git_commit": git_commit(paths, stage),
        }
        context.log.info(f"{stage}: data version {version} ({how})")
        experiment = context.run.tags.get(EXPERIMENT_TAG)
        if experiment and stage == CHAIN_END:
            metadata["dvc_experiment"] = save_experiment(paths, experiment_name(experiment), cfg)
            context.log.info(f"saved as DVC experiment {metadata['dvc_experiment']}: `dvc exp show` lists it")
        return result._replace(metadata=metadata, data_version=dg.DataVersion(version))

    return asset
