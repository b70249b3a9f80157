"""PIGEON's hierarchical refinement of a geocell prediction with prototypes.

For each query: the top-K cells by probability; within each, the prototype nearest to the
query embedding (Euclidean); a softmax with ``temperature`` over the K negative distances,
multiplied by the K cell probabilities; the guess is the winning prototype's location. A
refinement that moves the guess more than ``max_move_km`` from the top cell's centroid is
cancelled (the centroid stands). Without prototypes (``enabled: false``, the ablation) the
guess is the top cell's centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.geo.haversine import haversine_km
from ml.refine.prototypes import Prototypes
from ml.settings import RefineConfig


@dataclass
class Guess:
    lat: np.ndarray
    lon: np.ndarray
    top_cells: np.ndarray  # (N, K) cell ids by probability
    top_probs: np.ndarray  # (N, K)
    prototype: np.ndarray  # (N,) winning prototype id, -1 when the centroid stands
    cancelled: np.ndarray  # (N,) bool: a refinement moved too far and was cancelled


def refine_guess(
    probs: np.ndarray, embeddings: np.ndarray, centroids: np.ndarray, prototypes: Prototypes | None, cfg: RefineConfig
) -> Guess:
    probs = np.asarray(probs, np.float64)
    n, c = probs.shape
    k = min(cfg.top_k, c)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    top_p = np.take_along_axis(probs, top, axis=1)
    lat = centroids[top[:, 0], 0].copy()
    lon = centroids[top[:, 0], 1].copy()
    chosen = np.full(n, -1, dtype=np.int64)
    cancelled = np.zeros(n, bool)
    if not cfg.enabled or prototypes is None or len(prototypes.cell) == 0:
        return Guess(lat, lon, top, top_p, chosen, cancelled)
    by_cell: dict[int, np.ndarray] = {}
    for pid, cell in enumerate(prototypes.cell):
        by_cell.setdefault(int(cell), []).append(pid)
    by_cell = {cell: np.array(p) for cell, p in by_cell.items()}
    for q in range(n):
        best, dist = np.full(k, -1), np.full(k, np.inf)
        for j, cell in enumerate(top[q]):
            pids = by_cell.get(int(cell))
            if pids is None:
                continue
            d = np.linalg.norm(prototypes.embeddings[pids] - embeddings[q], axis=1)
            best[j], dist[j] = pids[np.argmin(d)], d.min()
        ok = best >= 0
        if not ok.any():
            continue
        score = np.where(ok, -dist / cfg.temperature, -np.inf)
        w = np.exp(score - score[ok].max())
        combined = w / w.sum() * top_p[q]
        win = int(best[np.argmax(combined)])
        plat, plon = prototypes.lat[win], prototypes.lon[win]
        if haversine_km(plat, plon, lat[q], lon[q]) > cfg.max_move_km:
            cancelled[q] = True
            continue
        lat[q], lon[q], chosen[q] = plat, plon, win
    return Guess(lat, lon, top, top_p, chosen, cancelled)
