"""The geocell oracle: what a perfect cell classifier would score with a set of cells (each
held-out point guessed at the centroid of the cell it falls in), semantic cells against naive
boxes of the same count (``python -m benchmarks.geocells``)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ml.geo.cells import oracle_distances
from ml.geo.naive import build_naive_geocells
from ml.geo.scores import distance_summary
from ml.geo.semantic import build_geocells


def oracle_comparison(
    train: pd.DataFrame, held_lat, held_lon, admin0, admin1, cfg, sizes: list[tuple[int, int]]
) -> dict[str, dict]:
    """For each (min, max) cell size: semantic cells from ``train``, naive boxes of the same
    count, and each one's oracle on the held-out coordinates (% within 1/25/200/750/2500 km,
    median km: what a perfect cell classifier would score)."""
    out = {}
    for lo, hi in sizes:
        semantic = build_geocells(train, admin0, admin1, replace(cfg, min_cell_size=lo, max_cell_size=hi))
        naive = build_naive_geocells(train, len(semantic.cells))
        row = {"n_cells": int(len(semantic.cells)), "naive_cells": int(len(naive.cells))}
        for name, cells in (("semantic", semantic), ("naive", naive)):
            summary = distance_summary(oracle_distances(cells, held_lat, held_lon))
            row[name] = {k: round(v, 2) for k, v in summary.items()}
        out[f"{lo}/{hi}"] = row
    return out


def oracle_lines(table: dict[str, dict]) -> list[str]:
    """The comparison as a fixed-width text table."""
    keys = ["within_1km", "within_25km", "within_200km", "within_750km", "within_2500km", "median_km"]
    head = f"{'min/max':>9} {'cells':>6} {'builder':>8} " + " ".join(f"{k.replace('within_', '<='):>9}" for k in keys)
    lines = [head]
    for sizes, row in table.items():
        for name in ("semantic", "naive"):
            n = row["n_cells"] if name == "semantic" else row["naive_cells"]
            lines.append(f"{sizes:>9} {n:>6} {name:>8} " + " ".join(f"{row[name][k]:>9.2f}" for k in keys))
    return lines
