"""Splitting one oversized geocell (rule 5 of ``ml.geo.semantic``): OPTICS clusters of its
training points, balanced to [min, max] by merging and principal-axis bisection, each group's
region the union of its points' Voronoi polygons clipped to the parent polygon."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

from ml.geo.haversine import EARTH_RADIUS_KM
from ml.geo.optics import optics_labels
from ml.settings import GeocellsConfig


def _local_xy(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Equirectangular km around the first point, longitudes unwrapped across the antimeridian."""
    lon0 = lon[0]
    dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
    coslat = np.cos(np.radians(np.mean(lat)))
    return np.stack([dlon * coslat, lat - lat[0]], axis=1) * (np.pi * EARTH_RADIUS_KM / 180.0)


def _bisect(xy: np.ndarray, w: np.ndarray, min_size: int) -> np.ndarray | None:
    """Boolean mask of one half of a cut of weighted sites, both halves weighing at least
    min_size: the weighted median along the principal axis, else (a heavy site in the middle)
    the sites nearest to the heaviest site or to either end of the axis. None when no cut
    exists (one indivisible site)."""
    mean = np.average(xy, axis=0, weights=w)
    centred = (xy - mean) * np.sqrt(w)[:, None]
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = (xy - mean) @ vt[0]
    orders = [np.argsort(proj, kind="stable")]
    for seed in (int(np.argmax(w)), int(np.argmin(proj)), int(np.argmax(proj))):
        orders.append(np.argsort(np.linalg.norm(xy - xy[seed], axis=1), kind="stable"))
    total = w.sum()
    for order in orders:
        cum = np.cumsum(w[order])
        ok = (cum >= min_size) & (total - cum >= min_size)
        if ok.any():
            k = np.flatnonzero(ok)[np.argmin(np.abs(cum[ok] - total / 2))]
            mask = np.zeros(len(w), bool)
            mask[order[: k + 1]] = True
            return mask
    return None


def balance_groups(labels: np.ndarray, xy: np.ndarray, w: np.ndarray, min_size: int, max_size: int) -> np.ndarray:
    """Merge groups under min into the nearest group, cut groups over max, until all fit."""
    labels = labels.copy()
    w = np.asarray(w, dtype=np.float64)
    for _ in range(10 * len(labels) + 10):
        total = np.bincount(labels, weights=w)
        ids = np.flatnonzero(np.bincount(labels))
        sizes = total[ids]
        if len(ids) > 1 and sizes.min() < min_size:
            g = ids[np.argmin(sizes)]
            centres = np.stack([np.bincount(labels, weights=w * xy[:, j])[ids] for j in (0, 1)], axis=1)
            centres /= sizes[:, None]
            d = np.linalg.norm(centres - centres[ids == g][0], axis=1)
            d[ids == g] = np.inf
            labels[labels == g] = ids[np.argmin(d)]
            continue
        if sizes.max() > max_size:
            g = ids[np.argmax(sizes)]
            members = np.flatnonzero(labels == g)
            half = _bisect(xy[members], w[members], min_size)
            if half is None:
                return labels  # an indivisible site heavier than max: reported as a violation
            labels[members[half]] = labels.max() + 1
            continue
        return labels
    raise RuntimeError("geocell balancing did not converge")


def pieces(lat, lon, limit: int) -> list[np.ndarray]:
    """Site indices cut into pieces of at most ``limit`` sites: halves at the median along the
    principal axis, recursively (a unit of PIGEOTTO's size is clustered piece by piece, so the
    split's cost grows with the number of sites, not with the density of one admin unit)."""
    xy = _local_xy(np.asarray(lat), np.asarray(lon))
    todo, done = [np.arange(len(xy))], []
    while todo:
        idx = todo.pop()
        if len(idx) <= limit:
            done.append(idx)
            continue
        half = _bisect(xy[idx], np.ones(len(idx)), len(idx) // 2)
        todo += [idx[~half], idx[half]]
    return sorted(done, key=lambda i: int(i[0]))


def cluster_sites(lat, lon, weight, cfg: GeocellsConfig) -> np.ndarray:
    """Rule 5 on one piece of a cell's unique sites: OPTICS clusters, noise to the nearest
    cluster, balanced to [min, max]; groups numbered 0..k-1."""
    lat, lon, weight = np.asarray(lat), np.asarray(lon), np.asarray(weight)
    xy = _local_xy(lat, lon)
    n = len(lat)
    labels = np.zeros(n, dtype=np.int64)
    if n >= max(cfg.optics.min_samples, 2):
        o = cfg.optics
        eps = o.max_eps_km / EARTH_RADIUS_KM
        labels = optics_labels(lat, lon, o.min_samples, o.xi, max(2, min(o.min_cluster_size, n)), eps).astype(np.int64)
        if (labels < 0).all():
            labels[:] = 0
        elif (labels < 0).any():  # noise joins the cluster of its nearest clustered site
            clustered = np.flatnonzero(labels >= 0)
            _, nearest = cKDTree(xy[clustered]).query(xy[labels < 0])
            labels[labels < 0] = labels[clustered[nearest]]
    labels = balance_groups(labels, xy, weight, cfg.min_cell_size, cfg.max_cell_size)
    return np.unique(labels, return_inverse=True)[1].ravel()


def group_polygons(lat, lon, labels, parent_wkb: bytes) -> list[bytes]:
    """Each group's region (WKB): the union of its sites' Voronoi polygons clipped to the parent."""
    lat, lon, parent = np.asarray(lat), np.asarray(lon), shapely.from_wkb(parent_wkb)
    k = int(labels.max()) + 1
    if k == 1:
        return [shapely.to_wkb(parent)]
    sites = shapely.points(lon, lat)
    bounds = shapely.box(*shapely.bounds(shapely.union_all([parent, shapely.multipoints(sites)])))
    cells = shapely.voronoi_polygons(shapely.multipoints(sites), extend_to=bounds.buffer(1.0), ordered=True)
    voronoi = np.array(shapely.get_parts(cells))
    regions = [shapely.intersection(shapely.coverage_union_all(voronoi[labels == g]), parent) for g in range(k)]
    # Slivers: parts of a region holding none of its sites go to the nearest other site's group.
    tree = cKDTree(np.stack([lon, lat], axis=1))
    extra: list[list] = [[] for _ in range(k)]
    for g in range(k):
        parts = shapely.get_parts(regions[g])
        if len(parts) <= 1:
            continue
        own = sites[labels == g]
        keep = []
        for part in parts:
            if shapely.intersects(part, own).any():
                keep.append(part)
                continue
            rp = shapely.get_coordinates(shapely.point_on_surface(part))[0]
            _, idx = tree.query(rp, k=min(len(lat), 8))
            others = [i for i in np.atleast_1d(idx) if labels[i] != g]
            if others:
                extra[labels[others[0]]].append(part)
            else:
                keep.append(part)
        regions[g] = shapely.union_all(keep) if keep else shapely.Polygon()
    for g in range(k):
        if extra[g]:
            regions[g] = shapely.union_all([regions[g], *extra[g]])
    return [shapely.to_wkb(shapely.make_valid(r)) for r in regions]
