"""The training stages under torchrun: ``python -m torch.distributed.run --nproc_per_node N -m
ml.stages.launch <streetclip|geocell_model> <project root>`` (what the assets start when their
``processes`` param is above 1; usable by hand, e.g. on a Kubernetes GPU node). Every process
runs the same stage function; only rank 0 writes outputs."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ml.paths import Paths
from ml.stages import geocell_model, streetclip

RUNS = {"streetclip": streetclip.run_streetclip, "geocell_model": geocell_model.run_geocell_model}
METRICS = {"streetclip": streetclip.metrics_file, "geocell_model": geocell_model.metrics_file}


def run_training(asset: str, paths: Paths, processes: int, device: str) -> dict:
    """Train ``asset`` here (one process) or under torchrun (``processes`` > 1); its metrics."""
    if processes <= 1:
        return RUNS[asset](paths)
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    launch(asset, paths.root, processes, cuda)
    return json.loads(METRICS[asset](paths).read_text())


def launch(asset: str, root: Path, processes: int, cuda: bool) -> None:
    """Run this module for ``asset`` under torchrun with ``processes`` processes on this
    machine; raises when any process fails."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd += ["-m", "ml.stages.launch", asset, str(root)]
    env = dict(os.environ)
    if not cuda:
        env.setdefault("OMP_NUM_THREADS", "1")
    subprocess.run(cmd, check=True, env=env, cwd=Path(__file__).resolve().parents[2])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("asset", choices=sorted(RUNS))
    parser.add_argument("root", help="the project root (params.yaml, data/)")
    args = parser.parse_args(argv)
    RUNS[args.asset](Paths(Path(args.root).resolve()))


if __name__ == "__main__":
    main()
