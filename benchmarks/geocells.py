"""Geocells on the whole 100,000-point MP-16 gallery (or any CSV of lat, lon: ``--points``).

1. Times ``build_geocells`` at PIGEON's min 30 / max 60 on every on-land point as training
   data and counts each invariant's violations (the gallery is enriched first, not timed).
2. The oracle, semantic vs naive at equal cell counts: a seeded 90/10 split; semantic cells from
   the 90% at several (min, max) sizes, naive boxes (ml/geo/naive.py) of the same count, and for
   the held-out 10% the distance to the centroid of the cell each falls in (what a perfect cell
   classifier would score), as % within 1 / 25 / 200 / 750 / 2500 km and median km.

    python -m benchmarks.geocells [--points my_coordinates.csv] [--sizes 30/60,100/200,300/600]
"""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(1)  # per process; geocells run `workers` processes

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ml.config import load_config  # noqa: E402
from ml.data.enrich import EnrichConfig, enrich_locations  # noqa: E402
from ml.data.sources import RawLocationsConfig, load_raw_locations  # noqa: E402
from ml.eval.oracle import oracle_comparison, oracle_lines  # noqa: E402
from ml.geo.cells import GeocellsConfig, check_geocells, offshore_cells  # noqa: E402
from ml.geo.reference import ReferenceData  # noqa: E402
from ml.geo.semantic import build_geocells  # noqa: E402
from ml.paths import Paths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", help="a CSV of lat, lon (default: the MP-16 gallery in data/reference)")
    parser.add_argument("--sizes", default="30/60,100/200,300/600", help="min/max cell sizes for the oracle")
    args = parser.parse_args()
    paths = Paths.from_env()
    reference = ReferenceData(paths.reference)
    gallery = Path(args.points).resolve() if args.points else paths.reference / "mp16_gallery_100k.csv"
    raw = load_raw_locations(RawLocationsConfig("default", str(gallery), 0, 0, 0, 0), gallery, paths.root).locations
    points = enrich_locations(raw, reference, load_config(EnrichConfig, paths.params), paths.root).locations
    cfg = replace(load_config(GeocellsConfig, paths.params), min_cell_size=30, max_cell_size=60, builder="semantic")
    admin0, admin1 = reference.admin0, reference.admin1
    print(f"points: {gallery.name}, {len(points):,} on land")

    start = time.perf_counter()
    cells = build_geocells(points, admin0, admin1, cfg)
    seconds = time.perf_counter() - start
    violations = check_geocells(cells, points, cfg)
    sizes = cells.cells["n_points"]
    kinds = cells.cells["kind"].value_counts().to_dict()
    print(f"{len(points):,} points -> {len(sizes):,} cells in {seconds:.1f} s ({cfg.workers} workers)")
    print(f"stages {cells.seconds}")
    print(f"cell sizes: min {sizes.min()}, median {sizes.median():.0f}, max {sizes.max()}; kinds {kinds}")
    print(f"violations: {violations}")
    print(f"offshore cells (no polygon, reached through their points): {offshore_cells(cells)}")

    held = np.random.default_rng(0).random(len(points)) < 0.1
    steps = [tuple(int(v) for v in s.split("/")) for s in args.sizes.split(",")]
    start = time.perf_counter()
    oracle = oracle_comparison(
        points[~held], points["lat"][held].to_numpy(), points["lon"][held].to_numpy(), admin0, admin1, cfg, steps
    )
    print(f"oracle on {held.sum():,} held-out points, cells from the other 90% ({time.perf_counter() - start:.0f} s):")
    print("\n".join(oracle_lines(oracle)))
    report(
        {
            "build_seconds": round(seconds, 2),
            "n_cells": int(len(sizes)),
            "violations": int(sum(violations.values())),
            "oracle": oracle,
            "points": int(len(points)),
            "threads": THREADS,
        }
    )


if __name__ == "__main__":
    main()
