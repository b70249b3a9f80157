"""The whole embedded default, after install: `dvc repro` of every stage in a fresh copy of the
repository (tracked files only, no earlier outputs, a fresh Dagster instance), timed end to end
and per stage. Needs `make install` (the .venv and .venv-dvc environments) first; takes minutes.

A stage's `seconds` run from DVC's "Running stage" line to the next stage's (or to the end of
`dvc repro`): the `dagster` process, the asset, its checks and DVC's hashing and caching of the
outputs. Its `step_seconds` is the asset's own step in the Dagster event log (STEP_START to
STEP_SUCCESS of the step named as the asset); `overhead` is the difference: what a stage pays
beyond its work (goal <= 4 s each)."""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(2)

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

OVERHEAD_GOAL_S = 4.0


def fresh_copy(repo: Path, copy: Path) -> None:
    """The tracked files only, in a new git repository, without dvc.lock (everything reruns)."""
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (copy / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / f, copy / f)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    (copy / "dvc.lock").unlink(missing_ok=True)


def timed_repro(dvc: Path, copy: Path, env: dict) -> tuple[float, list[tuple[str, float]]]:
    """Runs `dvc repro`, stamping each "Running stage 'name':" line as it arrives: the total
    seconds and [(stage, seconds)] in the order run."""
    starts: list[tuple[str, float]] = []
    tail: list[str] = []
    start = time.perf_counter()
    with subprocess.Popen(
        [str(dvc), "repro"], cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout:
            if line.startswith("Running stage '"):
                starts.append((line.split("'")[1], time.perf_counter()))
            tail = (tail + [line])[-60:]
    end = time.perf_counter()
    if proc.returncode != 0:
        sys.exit("dvc repro failed:\n" + "".join(tail))
    bounds = [t for _, t in starts[1:]] + [end]
    return end - start, [(name, stop - t) for (name, t), stop in zip(starts, bounds, strict=True)]


def step_seconds(dagster_home: Path) -> dict[str, float]:
    """Each asset step's STEP_START -> STEP_SUCCESS seconds, from the instance's event log (the
    latest run that holds the step)."""
    from dagster import DagsterEventType, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    found: dict[str, float] = {}
    with DagsterInstance.get() as instance:
        for run in reversed(instance.get_runs()):  # oldest first: a later run of a step wins
            begun: dict[str, float] = {}
            for entry in instance.all_logs(run.run_id):
                event = entry.dagster_event
                if event is None or entry.step_key is None:
                    continue
                if event.event_type == DagsterEventType.STEP_START:
                    begun[entry.step_key] = entry.timestamp
                elif event.event_type == DagsterEventType.STEP_SUCCESS and entry.step_key in begun:
                    found[entry.step_key] = entry.timestamp - begun[entry.step_key]
    return found


def main() -> None:
    repo = Path.cwd()
    dvc = repo / ".venv-dvc" / "bin" / "dvc"
    if not dvc.exists():
        sys.exit("run `make install` first: this benchmark needs .venv-dvc")
    with tempfile.TemporaryDirectory() as tmp:
        copy, home = Path(tmp) / "roost", Path(tmp) / "dagster"
        fresh_copy(repo, copy)
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = os.environ | {"DAGSTER_HOME": str(home), "PATH": f"{repo / '.venv' / 'bin'}:{os.environ['PATH']}"}
        seconds, stages = timed_repro(dvc, copy, env)
        steps = step_seconds(home)
    rows = []
    print(f"{'stage':<20} {'seconds':>8} {'step':>8} {'overhead':>9}")
    for name, wall in stages:
        step = steps.get(name)
        over = None if step is None else wall - step
        rows.append({"name": name, "seconds": round(wall, 1), "step_seconds": None if step is None else round(step, 1)})
        step_s = "?" if step is None else f"{step:.1f}"
        over_s = "?" if over is None else f"{over:.1f}"
        print(f"{name:<20} {wall:>8.1f} {step_s:>8} {over_s:>9}")
    overheads = [r["seconds"] - r["step_seconds"] for r in rows if r["step_seconds"] is not None]
    print(
        f"dvc repro of {len(rows)} stages in {seconds:.0f} s; overhead {sum(overheads):.1f} s in all, "
        f"at most {max(overheads, default=0):.1f} s a stage (goal <= {OVERHEAD_GOAL_S:.0f} s)"
    )
    report({"seconds": round(seconds, 1), "stages": rows, "max_overhead_s": round(max(overheads, default=0), 1)})


if __name__ == "__main__":
    main()
