"""The torchrun entry point: ``python -m torch.distributed.run --nproc_per_node N -m
ml.train.launch <streetclip|geocell_model> <project root>`` (what the assets start when their
``processes`` param is above 1; usable by hand, e.g. on a Kubernetes GPU node)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ml.paths import Paths
from ml.train.run import RUNS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("asset", choices=sorted(RUNS))
    parser.add_argument("root", help="the project root (params.yaml, data/)")
    args = parser.parse_args(argv)
    RUNS[args.asset](Paths(Path(args.root).resolve()))


if __name__ == "__main__":
    main()
