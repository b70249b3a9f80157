"""The whole embedded default, after install: `dvc repro` of every stage in a fresh copy of the
repository (tracked files only, no earlier outputs, a fresh Dagster instance), timed end to end.
Needs `make install` (the .venv and .venv-dvc environments) first; takes minutes."""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(2)

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def main() -> None:
    repo = Path.cwd()
    dvc = repo / ".venv-dvc" / "bin" / "dvc"
    if not dvc.exists():
        sys.exit("run `make install` first: this benchmark needs .venv-dvc")
    files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "roost"
        for f in files:
            (copy / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / f, copy / f)
        subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
        env = os.environ | {
            "DAGSTER_HOME": str(Path(tmp) / "dagster"),
            "PATH": f"{repo / '.venv' / 'bin'}:{os.environ['PATH']}",
        }
        Path(env["DAGSTER_HOME"]).mkdir()
        (copy / "dvc.lock").unlink(missing_ok=True)
        start = time.perf_counter()
        run = subprocess.run([str(dvc), "repro"], cwd=copy, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"dvc repro failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        stages = [line.split("'")[1] for line in run.stdout.splitlines() if line.startswith("Running stage")]
    print(f"dvc repro of {len(stages)} stages ({', '.join(stages)}) in {seconds:.0f} s")
    report({"seconds": round(seconds, 1), "stages": len(stages)})


if __name__ == "__main__":
    main()
