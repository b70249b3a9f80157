"""Geocells on the whole 100,000-point MP-16 gallery (or any CSV of lat, lon: ``--points``).

1. Times ``build_geocells`` at PIGEON's min 30 / max 60 on every on-land point as training
   data and counts each invariant's violations (the gallery is enriched first, not timed).
2. The oracle, semantic vs naive at equal cell counts: a seeded 90/10 split; semantic cells from
   the 90% at several (min, max) sizes, naive boxes (ml/geo/naive.py) of the same count, and for
   the held-out 10% the distance to the centroid of the cell each falls in (what a perfect cell
   classifier would score), as % within 1 / 25 / 200 / 750 / 2500 km and median km.
3. ``--scale``: builds at 100k, 300k and 1M points, at PIGEON's 30/60 and PIGEOTTO's 1000/2000,
   each in a fresh process (seconds, peak RSS, violations), a fit of seconds against n log n, and
   the projection to PIGEOTTO's 4.5M images. The points: the enriched gallery resampled with
   replacement (seed 0), each draw moved by a seeded Gaussian jitter of 2 km in each direction;
   then enriched again (that enrichment is timed: ``enrich_seconds``); a draw the jitter pushed off
   land (beyond the enrichment's coast cap) is put back at its gallery point, so every point is on
   land. Peak RSS is the build process's own peak plus ``workers`` times its largest worker's (an
   upper bound of what the build held at once).

    python -m benchmarks.geocells [--points my_coordinates.csv] [--sizes 30/60,100/200,300/600] [--scale]
"""

from benchmarks.common import pin_threads, report

THREADS = pin_threads(1)  # per process; geocells run `workers` processes

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ml.config import load_config  # noqa: E402
from ml.data.enrich import enrich_locations  # noqa: E402
from ml.data.sources import load_raw_locations  # noqa: E402
from ml.eval.oracle import oracle_comparison, oracle_lines  # noqa: E402
from ml.geo.cells import check_geocells, offshore_cells  # noqa: E402
from ml.geo.reference import ReferenceData  # noqa: E402
from ml.geo.semantic import build_geocells  # noqa: E402
from ml.paths import Paths  # noqa: E402
from ml.settings import EnrichConfig, GeocellsConfig, RawLocationsConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", help="a CSV of lat, lon (default: the MP-16 gallery in data/reference)")
    parser.add_argument("--sizes", default="30/60,100/200,300/600", help="min/max cell sizes for the oracle")
    parser.add_argument("--scale", action="store_true", help="also build at 100k / 300k / 1M points")
    parser.add_argument("--one", nargs=2, metavar=("POINTS", "SIZE"), help=argparse.SUPPRESS)  # a --scale build
    args = parser.parse_args()
    if args.one:
        return one_build(Path(args.one[0]), args.one[1])
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
    result = {
        "build_seconds": round(seconds, 2),
        "n_cells": int(len(sizes)),
        "violations": int(sum(violations.values())),
        "oracle": oracle,
        "points": int(len(points)),
        "threads": THREADS,
    }
    if args.scale:
        result |= scaling(points, raw, reference, paths)
    report(result)


SCALE_POINTS = (100_000, 300_000, 1_000_000)
SCALE_SIZES = ("30/60", "1000/2000")
JITTER_KM = 2.0


def resampled(points: pd.DataFrame, raw: pd.DataFrame, n: int, reference, paths) -> tuple[pd.DataFrame, float]:
    """``n`` on-land points drawn from the enriched gallery (see the module docstring), and the
    seconds their enrichment took."""
    rng = np.random.default_rng(0)
    src = points.iloc[rng.integers(0, len(points), n)].reset_index(drop=True)
    dlat = rng.normal(0, JITTER_KM / 111.2, n)
    dlon = rng.normal(0, JITTER_KM / 111.2, n) / np.maximum(np.cos(np.radians(src["lat"].to_numpy())), 0.05)
    moved = raw.set_index("id").loc[src["id"]].reset_index()  # the gallery rows drawn, then moved
    moved["id"] = [f"s{i}" for i in range(n)]
    moved["lat"] = np.clip(src["lat"].to_numpy() + dlat, -89.999, 89.999)
    moved["lon"] = (src["lon"].to_numpy() + dlon + 180.0) % 360.0 - 180.0
    moved["input_row"] = np.arange(n)
    start = time.perf_counter()
    enriched = enrich_locations(moved[raw.columns], reference, load_config(EnrichConfig, paths.params), paths.root)
    seconds = time.perf_counter() - start
    cols = ["id", "lat", "lon", "adm0_a3", "adm1_code", "admin1"]
    back = src.loc[moved["id"].isin(enriched.rejected["id"]).to_numpy(), cols[1:]].copy()
    back.insert(0, "id", moved["id"][moved["id"].isin(enriched.rejected["id"])].to_numpy())
    out = pd.concat([enriched.locations[cols], back], ignore_index=True)
    return out, seconds


def scaling(points: pd.DataFrame, raw: pd.DataFrame, reference, paths) -> dict:
    rows, enrich = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in SCALE_POINTS:
            pts, enrich[n] = resampled(points, raw, n, reference, paths)
            file = Path(tmp) / f"points_{n}.parquet"
            pts.to_parquet(file)
            print(f"scale: {n:,} points enriched in {enrich[n]:.1f} s")
            for size in SCALE_SIZES:
                cmd = [sys.executable, "-m", "benchmarks.geocells", "--one", str(file), size]
                run = subprocess.run(cmd, capture_output=True, text=True)
                if run.returncode != 0:
                    sys.exit(f"the {n:,}-point build at {size} failed:\n{run.stderr[-3000:]}")
                row = json.loads(run.stdout.strip().splitlines()[-1])
                rows.append({"points": n} | row)
                print(
                    f"scale: {n:>9,} points at {size:>9}: {row['seconds']:7.1f} s, "
                    f"peak RSS {row['peak_rss_mb']:,.0f} MB, {row['n_cells']:,} cells, violations {row['violations']}"
                )
    for size in SCALE_SIZES:
        mine = [r for r in rows if r["setting"] == size]
        (a, s_a), (b, s_b) = (mine[-2]["points"], mine[-2]["seconds"]), (mine[-1]["points"], mine[-1]["seconds"])
        exponent = np.log(s_b / s_a) / np.log(b / a)
        nlogn = (b * np.log(b)) / (a * np.log(a))
        per = s_b / (b * np.log(b))  # seconds per n log n, from the largest build
        projected = per * 4.5e6 * np.log(4.5e6)
        print(
            f"scale {size}: {a:,} -> {b:,} points took {s_b / s_a:.2f}x "
            f"(n log n: {nlogn:.2f}x; exponent {exponent:.2f}); "
            f"projected for 4.5M points (n log n from the 1M build): {projected:.0f} s"
        )
    return {"scaling": rows, "enrich_seconds": {str(n): round(s, 2) for n, s in enrich.items()}}


def one_build(file: Path, size: str) -> None:
    """One --scale build in this process: prints a JSON line (seconds, peak RSS, violations)."""
    paths = Paths.from_env()
    reference = ReferenceData(paths.reference)
    lo, hi = (int(v) for v in size.split("/"))
    cfg = replace(load_config(GeocellsConfig, paths.params), min_cell_size=lo, max_cell_size=hi, builder="semantic")
    points = pd.read_parquet(file)
    admin0, admin1 = reference.admin0, reference.admin1
    start = time.perf_counter()
    cells = build_geocells(points, admin0, admin1, cfg)
    seconds = time.perf_counter() - start
    violations = check_geocells(cells, points, cfg)
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    row = {
        "setting": size,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round((self_kb + cfg.workers * child_kb) / 1024),
        "violations": int(sum(violations.values())),
        "n_cells": len(cells.cells),
        "stages": {k: round(v, 1) for k, v in cells.seconds.items()},
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
