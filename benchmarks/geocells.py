"""Semantic geocells for the whole 100,000-point MP-16 gallery at PIGEON's min 30 / max 60.

Enriches the gallery (not timed), then times ``build_geocells`` on every on-land point as
training data and counts each invariant's violations. The oracle: cells built on a seeded 90%
of the gallery, and for the other 10% the distance to the centroid of the cell each point
falls in (what a perfect cell classifier would score).
"""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(1)  # per process; geocells run `workers` processes

import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

from ml.config import load_config  # noqa: E402
from ml.data.enrich import EnrichConfig, enrich_locations  # noqa: E402
from ml.data.sources import RawLocationsConfig, load_raw_locations  # noqa: E402
from ml.eval.metrics import distance_summary  # noqa: E402
from ml.geo.geocells import GeocellsConfig, build_geocells, check_geocells, offshore_cells, oracle_distances  # noqa: E402
from ml.geo.reference import ReferenceData  # noqa: E402
from ml.paths import Paths  # noqa: E402


def main() -> None:
    paths = Paths.from_env()
    reference = ReferenceData(paths.reference)
    gallery = paths.reference / "mp16_gallery_100k.csv"
    raw = load_raw_locations(RawLocationsConfig("default", str(gallery), 0, 0), gallery, paths.root).locations
    points = enrich_locations(raw, reference, load_config(EnrichConfig, paths.params), paths.root).locations
    cfg = replace(load_config(GeocellsConfig, paths.params), min_cell_size=30, max_cell_size=60)
    admin0, admin1 = reference.admin0, reference.admin1

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
    train_cells = build_geocells(points[~held], admin0, admin1, cfg)
    oracle = distance_summary(
        oracle_distances(train_cells, points["lat"][held].to_numpy(), points["lon"][held].to_numpy())
    )
    oracle = {k: round(v, 2) for k, v in oracle.items()}
    print(f"oracle on {held.sum():,} held-out points ({len(train_cells.cells):,} cells from the other 90%): {oracle}")
    report(
        {
            "build_seconds": round(seconds, 2),
            "n_cells": int(len(sizes)),
            "violations": int(sum(violations.values())),
            "oracle": oracle,
            "points": int(len(points)),
        }
    )


if __name__ == "__main__":
    main()
