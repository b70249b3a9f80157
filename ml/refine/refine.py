"""PIGEON's hierarchical refinement of a geocell prediction with prototypes.

For each query: the top-K cells by probability; within each, the prototype nearest to the
query embedding (Euclidean); a softmax with ``temperature`` over the K negative distances,
multiplied by the K cell probabilities; the guess is the winning prototype's location. A
refinement that moves the guess more than ``max_move_km`` from the anchor cell's centroid
is cancelled (the centroid stands). Without prototypes (``enabled: false``, the ablation) the
guess is the top cell's centroid.

Which cell anchors the guess is ``guess`` (``anchor_cells``): ``top_cell`` (PIGEON), the
most probable cell; ``min_expected_distance``, the cell whose centroid minimises the
probability-weighted haversine distance to all centroids (the Bayes guess for distance);
``country_first``, the most probable cell of the most probable country (cell probabilities
summed by country: the Bayes guess for country accuracy), refinement then staying in that
country. The move cap is measured from the anchor's centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.geo.haversine import haversine_km
from ml.refine.prototypes import Prototypes
from ml.settings import GUESSES, RefineConfig


@dataclass
class Guess:
    lat: np.ndarray
    lon: np.ndarray
    top_cells: np.ndarray  # (N, K) cell ids by probability (eligible ones: see anchor_cells)
    top_probs: np.ndarray  # (N, K)
    prototype: np.ndarray  # (N,) winning prototype id, -1 when the centroid stands
    cancelled: np.ndarray  # (N,) bool: a refinement moved too far and was cancelled


@dataclass(frozen=True)
class CellGeometry:
    """What the anchors need of the cells, computed once per model: centroids (C, 2), the
    centroid-to-centroid km matrix (C, C) and each cell's country code (C,)."""

    centroids: np.ndarray
    km: np.ndarray
    country: np.ndarray

    @classmethod
    def of(cls, centroids: np.ndarray, country) -> CellGeometry:
        c = np.asarray(centroids, np.float64)
        km = haversine_km(c[:, None, 0], c[:, None, 1], c[None, :, 0], c[None, :, 1])
        return cls(c, km, np.asarray(country, dtype=object).astype(str))


def anchor_cells(probs: np.ndarray, cells: CellGeometry, guess: str) -> tuple[np.ndarray, np.ndarray]:
    """(anchor cell per query, eligible-cell mask (N, C)): the cell whose centroid is the
    unrefined guess, and the cells refinement may choose from."""
    eligible = np.ones(probs.shape, bool)
    if guess == "top_cell":
        return probs.argmax(axis=1), eligible
    if guess == "min_expected_distance":
        return (probs @ cells.km).argmin(axis=1), eligible
    if guess == "country_first":
        codes, of_cell = np.unique(cells.country, return_inverse=True)
        by_country = probs @ (of_cell[:, None] == np.arange(len(codes))[None, :])
        eligible = of_cell[None, :] == by_country.argmax(axis=1)[:, None]
        return np.where(eligible, probs, -1.0).argmax(axis=1), eligible
    raise ValueError(f"refine.guess {guess!r}: use one of {', '.join(GUESSES)}")


def refine_guess(
    probs: np.ndarray, embeddings: np.ndarray, cells: CellGeometry, prototypes: Prototypes | None, cfg: RefineConfig
) -> Guess:
    probs = np.asarray(probs, np.float64)
    n, c = probs.shape
    k = min(cfg.top_k, c)
    anchor, eligible = anchor_cells(probs, cells, cfg.guess)
    top = np.argsort(-np.where(eligible, probs, -1.0), axis=1, kind="stable")[:, :k]
    top_p = np.take_along_axis(probs, top, axis=1)
    top_p = np.where(np.take_along_axis(eligible, top, axis=1), top_p, 0.0)
    lat = cells.centroids[anchor, 0].copy()
    lon = cells.centroids[anchor, 1].copy()
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
        ok = (best >= 0) & (top_p[q] > 0)
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
