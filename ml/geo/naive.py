"""Naive geocells (PIGEON's ablation baseline): boxes of roughly equal training-point count that
ignore every border.

An adaptive k-d "quadtree" on lat/lon: the whole globe is one box; the box holding the most
training points is split in two at the median of its points along its longer side, until there
are ``n_cells`` boxes. A side's length is measured on the ground: the longitude extent is scaled
by the cosine of the box's middle latitude. The cut lies halfway between the two middle distinct
coordinates, so no training point sits on a cut and each box's points are exactly those inside
it; identical coordinates always stay together, and a box whose points all share one coordinate
is never split (so fewer than ``n_cells`` boxes can result, with many duplicates). Ties are
broken by the box's creation order, so the build is deterministic.

Balance: each split is of the then largest box, so sizes are non-increasing over the splits and
every final box holds between half the last split box's points (rounded down) and that many:
``max <= 2 * min + 1`` with distinct coordinates.

The output has the semantic builder's shape (``Geocells``: cells with polygon, centroid,
counts, the majority country and admin-1; assignments), so the rest of the pipeline and
``GeocellIndex.lookup`` work unchanged; ``kind`` is ``naive``.
"""

from __future__ import annotations

import heapq

import numpy as np
import pandas as pd
import shapely

from ml.geo.cells import Geocells, assemble_cells, cell_record
from ml.geo.haversine import to_unit_xyz
from ml.timing import Laps


def _cut(values: np.ndarray) -> float | None:
    """The cut between two adjacent distinct values that halves the points most evenly
    (None: one value only)."""
    u, counts = np.unique(values, return_counts=True)
    if len(u) < 2:
        return None
    i = int(np.argmin(np.abs(np.cumsum(counts)[:-1] - len(values) / 2)))
    return float((u[i] + u[i + 1]) / 2)


def _split(box, lat: np.ndarray, lon: np.ndarray):
    """The box's two halves as (bounds, members) pairs, or None when it cannot be split."""
    (s, w, n, e), members = box
    ground_lon = (e - w) * np.cos(np.radians((s + n) / 2))
    axes = [(lon, 1), (lat, 0)] if ground_lon >= (n - s) else [(lat, 0), (lon, 1)]
    for values, axis in axes:  # the longer side first; the other when all points share it
        v = values[members]
        cut = _cut(v)
        if cut is None:
            continue
        low, high = members[v < cut], members[v >= cut]
        if axis == 0:
            return ((s, w, cut, e), low), ((cut, w, n, e), high)
        return ((s, w, n, cut), low), ((s, cut, n, e), high)
    return None


def build_naive_geocells(points: pd.DataFrame, n_cells: int) -> Geocells:
    """``n_cells`` border-blind boxes of about equal point count (columns id, lat, lon; optional
    country / admin1 name each box by its majority)."""
    if n_cells < 1:
        raise ValueError(f"naive geocells: n_cells is {n_cells}; it must be at least 1")
    lap = Laps()
    points = points.reset_index(drop=True)
    lat, lon = points["lat"].to_numpy(np.float64), points["lon"].to_numpy(np.float64)
    heap, order, done = [], 0, []
    heapq.heappush(heap, (-len(points), order, ((-90.0, -180.0, 90.0, 180.0), np.arange(len(points)))))
    while heap and len(heap) + len(done) < n_cells:
        _, _, box = heapq.heappop(heap)
        halves = _split(box, lat, lon) if len(box[1]) > 1 else None
        if halves is None:
            done.append(box)
            continue
        for half in halves:
            order += 1
            heapq.heappush(heap, (-len(half[1]), order, half))
    boxes = done + [b for _, _, b in sorted(heap, key=lambda t: t[1])]
    lap("split")

    xyz = to_unit_xyz(lat, lon)
    country = points["country"].astype(object).to_numpy() if "country" in points else np.full(len(points), None)
    admin1 = points["admin1"].astype(object).to_numpy() if "admin1" in points else np.full(len(points), None)
    records = []
    for (s, w, n, e), members in boxes:
        majority = pd.Series(country[members]).mode(dropna=True)
        top_admin1 = pd.Series(admin1[members]).mode(dropna=True)
        names = {
            "country": majority.iloc[0] if len(majority) else None,
            "admin1": top_admin1.iloc[0] if len(top_admin1) else None,
            "unit": f"box {s:.4f},{w:.4f},{n:.4f},{e:.4f}",
        }
        records.append(cell_record(xyz, members, shapely.box(w, s, e, n), **names, kind="naive", parent=-1))
    records.sort(key=lambda r: (r["centroid_lat"], r["centroid_lon"]))
    cells, assignments = assemble_cells(records, points, lat, lon)
    lap("assemble")
    return Geocells(cells=cells, assignments=assignments, seconds=lap.seconds)
