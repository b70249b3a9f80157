"""OPTICS on the sphere, fast: scikit-learn's algorithm (the same reachability ordering, the same
xi extraction, ``sklearn.cluster.cluster_optics_xi``) with its per-point costs removed.

scikit-learn's ``OPTICS(metric="haversine")`` spends ~1 ms a point on the Python side of its
main loop: a ball-tree radius query per point, a distance call through ``pairwise_distances`` and
an O(n) scan for the next point. Here the radius queries go to a KD-tree over unit vectors
(chord radius, then the exact haversine filter), the distances are one vectorised haversine, and
the next point is one ``argmin`` over an array holding the unprocessed points' reachability (ties
to the smallest index, as scikit-learn's scan picks it). Distances are in radians, computed
with scikit-learn's formula and rounded as it rounds them, so the labels match
``OPTICS(metric="haversine")`` on the same sites (``tests/test_geocells.py`` compares them).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

_DECIMALS = np.finfo(np.float64).precision


def _haversine_rad(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Central angle in radians, in scikit-learn's order of operations."""
    s0 = np.sin(0.5 * (lat1 - lat2))
    s1 = np.sin(0.5 * (lon1 - lon2))
    return 2.0 * np.arcsin(np.sqrt(s0 * s0 + np.cos(lat1) * np.cos(lat2) * s1 * s1))


def optics_order(lat_rad: np.ndarray, lon_rad: np.ndarray, min_samples: int, max_eps: float):
    """The OPTICS graph of points given in radians: (reachability, predecessor, ordering), with
    scikit-learn's conventions (inf for unreached, -1 for no predecessor)."""
    n = len(lat_rad)
    c = np.cos(lat_rad)
    xyz = np.stack([c * np.cos(lon_rad), c * np.sin(lon_rad), np.sin(lat_rad)], axis=1)
    tree = cKDTree(xyz)
    k = min(min_samples, n)
    _, nearest = tree.query(xyz, k=k)
    nearest = nearest.reshape(n, k)
    core = _haversine_rad(lat_rad[:, None], lon_rad[:, None], lat_rad[nearest], lon_rad[nearest]).max(axis=1)
    core[core > max_eps] = np.inf
    np.around(core, decimals=_DECIMALS, out=core)
    chord = 2.0 * np.sin(min(max_eps, np.pi) / 2.0) * (1 + 1e-9) + 1e-12  # a superset; the haversine filters

    reach = np.full(n, np.inf)
    key = np.full(n, np.inf)  # reach of the unprocessed points, inf once processed
    predecessor = np.full(n, -1, dtype=np.int64)
    processed = np.zeros(n, dtype=bool)
    ordering = np.empty(n, dtype=np.int64)
    fresh = 0  # every index below this is processed (the next unreached point, in index order)
    for step in range(n):
        point = int(np.argmin(key))  # the smallest reachability, ties to the smallest index
        if key[point] == np.inf:  # none reached: the first unprocessed point
            while processed[fresh]:
                fresh += 1
            point = fresh
        processed[point] = True
        key[point] = np.inf
        ordering[step] = point
        if core[point] == np.inf:
            continue
        cand = np.asarray(tree.query_ball_point(xyz[point], chord), dtype=np.int64)
        cand = cand[~processed[cand]]
        if not cand.size:
            continue
        d = _haversine_rad(lat_rad[point], lon_rad[point], lat_rad[cand], lon_rad[cand])
        rd = np.maximum(d, core[point])
        np.around(rd, decimals=_DECIMALS, out=rd)
        better = (rd < reach[cand]) & (d <= max_eps)
        cand, rd = cand[better], rd[better]
        reach[cand] = rd
        key[cand] = rd
        predecessor[cand] = point
    return reach, predecessor, ordering


def optics_labels(
    lat_deg: np.ndarray, lon_deg: np.ndarray, min_samples: int, xi: float, min_cluster_size: int, max_eps: float
) -> np.ndarray:
    """Cluster labels (-1 noise) of ``OPTICS(min_samples, xi, min_cluster_size, max_eps,
    metric="haversine").fit(radians([lat, lon])).labels_``; ``max_eps`` in radians."""
    from sklearn.cluster import cluster_optics_xi

    lat, lon = np.radians(np.asarray(lat_deg, np.float64)), np.radians(np.asarray(lon_deg, np.float64))
    reach, predecessor, ordering = optics_order(lat, lon, min_samples, max_eps)
    labels, _ = cluster_optics_xi(
        reachability=reach,
        predecessor=predecessor,
        ordering=ordering,
        min_samples=min_samples,
        min_cluster_size=min_cluster_size,
        xi=xi,
        predecessor_correction=True,
    )
    return labels
