"""PIGEON's semantic geocells: admin units, merged up to a minimum and split down to a maximum.

The rules, in order (``build_geocells``):

1. **Units.** The finest admin level available: the user's admin-2 polygons (GADM /
   geoBoundaries, ``enriched_locations.admin2``) where they hold training points, else Natural
   Earth admin-1 (what admin-2 does not cover). Unit polygons are made disjoint (where two
   overlap, the earlier keeps the overlap: admin-2 before admin-1, then layer order, the same
   rule as ``ml.geo.boundaries``). Points whose admin-1 area is disputed (no admin-0 row) form
   a unit per country: the admin-1 polygon cut by that country's admin-0 polygon; a point in a
   country but near none of its admin-1 units (a lake, a remote islet) joins the country's
   nearest admin-1 unit.
2. **One cell per populated unit.** A unit with no training point joins the cell of the
   nearest training point of the same country, so the cells cover the land of every country
   that has training points (land of countries without any is covered by no cell; the lookup
   sends such points to the cell of the nearest training point).
3. **Small countries.** A country with fewer than ``min_cell_size`` training points is one
   cell, below the minimum: the only cells allowed under it, and the only way a cell is never
   merged further. No cell ever crosses a country border.
4. **Merge.** The smallest cell under the minimum merges into a neighbour of the same country:
   first an adjacent cell of the same Natural Earth region (e.g. French départements of one
   région), then any adjacent cell, then (islands) any cell of the country; the nearest by
   centroid within the first tier that has one. Repeated until no cell is under the minimum.
5. **Split.** A cell over ``max_cell_size`` is split: OPTICS clusters its training points
   (haversine metric, params), noise joins the nearest cluster; then balancing: the smallest
   group under the minimum merges into the nearest group, a group over the maximum is cut in
   two at the weighted median of its principal axis (both halves at least the minimum, which
   ``max >= 2 * min - 1`` guarantees), until every group is within bounds. Identical
   coordinates always stay together. Each group's region is the union of its points' Voronoi
   polygons clipped to the parent polygon; a region's parts holding none of its points
   (slivers) go to the group of the nearest other point. Voronoi diagrams are planar in
   lon/lat; near the antimeridian regions are oddly shaped but still partition the parent.
6. **Centroid**: the spherical mean of the cell's training points.

``GeocellIndex.lookup`` maps any (lat, lon) to a cell: the cell polygon containing it, else the
cell of the nearest training point (coasts, piers, uncovered land).
"""

from __future__ import annotations

import heapq
import logging
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from ml.geo.haversine import EARTH_RADIUS_KM, haversine_km, to_unit_xyz
from ml.timing import Laps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpticsConfig:
    min_samples: int
    xi: float
    min_cluster_size: int
    max_eps_km: float


@dataclass(frozen=True)
class GeocellsConfig:
    SECTION: ClassVar[str] = "geocells"

    min_cell_size: int
    max_cell_size: int
    optics: OpticsConfig
    adjacency_deg: float  # units closer than this (degrees) are adjacent
    workers: int  # processes for splitting
    builder: str  # semantic (PIGEON's cells) | naive (border-blind equal-count boxes, the ablation)
    naive_cells: int  # naive: the number of boxes (0 = as many as the semantic build makes)

    def __post_init__(self):
        if self.builder not in ("semantic", "naive"):
            raise ValueError(f"geocells: builder {self.builder!r}; use semantic or naive")
        if self.max_cell_size < 2 * self.min_cell_size - 1:
            raise ValueError(
                f"geocells: max_cell_size {self.max_cell_size} must be at least 2 * min_cell_size - 1 "
                f"= {2 * self.min_cell_size - 1}, or a split cannot keep both halves above the minimum"
            )


@dataclass
class Geocells:
    cells: pd.DataFrame  # cell_id, geometry (shapely), centroid_lat/lon, n_points, country, ..., kind
    assignments: pd.DataFrame  # id, lat, lon, cell_id
    seconds: dict[str, float] = field(default_factory=dict)
    split_parents: dict[int, object] = field(default_factory=dict)  # parent polygons (for checks)

    def geodataframe(self):
        import geopandas as gpd

        return gpd.GeoDataFrame(self.cells, geometry="geometry", crs=4326)


# -- units -----------------------------------------------------------------------------------


def _unit_keys(points: pd.DataFrame, admin1: pd.DataFrame) -> np.ndarray:
    """Each point's unit: its admin-1 code; ``code@country`` in a disputed admin-1 area; for a
    point in a country but near none of its admin-1 units (a lake, a remote islet), the
    country's nearest admin-1 unit, or ``A0:country`` where the country has none."""
    parent = dict(zip(admin1["adm1_code"], admin1["adm0_a3"]))
    codes = points["adm1_code"].to_numpy(dtype=object)
    countries = points["adm0_a3"].to_numpy(dtype=object)
    missing = np.flatnonzero(pd.isna(codes))
    for a3 in np.unique(countries[missing].astype(str)) if len(missing) else []:
        rows = admin1[admin1["adm0_a3"] == a3]
        sel = missing[countries[missing] == a3]
        if len(rows):
            tree = shapely.STRtree(rows.geometry.to_numpy())
            pi, gi = tree.query_nearest(shapely.points(points["lon"].to_numpy()[sel], points["lat"].to_numpy()[sel]))
            first = np.r_[True, pi[1:] != pi[:-1]]
            codes = codes.copy()
            codes[sel[pi[first]]] = rows["adm1_code"].to_numpy()[gi[first]]
    keys = []
    for a3, code in zip(countries, codes):
        if code is None or pd.isna(code):
            keys.append(f"A0:{a3}")
        elif parent.get(code) != a3:
            keys.append(f"{code}@{a3}")
        else:
            keys.append(str(code))
    return np.array(keys, dtype=object)


def _difference(task: tuple[bytes, list]) -> bytes:
    geom, others = task
    return shapely.to_wkb(shapely.difference(shapely.from_wkb(geom), shapely.union_all(shapely.from_wkb(others))))


def build_units(keys: np.ndarray, admin0, admin1, workers: int = 1, finer: list | None = None) -> pd.DataFrame:
    """Disjoint unit polygons: key, geometry, country (adm0_a3), region, admin1 name. ``finer``
    units (admin-2) come first, so the admin-1 units keep only what they do not cover."""
    a0 = dict(zip(admin0["adm0_a3"], admin0.geometry))
    special, remainders = [], []
    for key in sorted(set(keys)):
        if key.startswith("A0:"):
            a3 = key[3:]
            if a3 in a0:
                remainders.append((key, a0[a3], a3, None, None))
        elif "@" in key:
            code, a3 = key.split("@")
            row = admin1[admin1["adm1_code"] == code]
            if len(row) and a3 in a0:
                geom = shapely.intersection(row.geometry.iloc[0], a0[a3])
                special.append((key, geom, a3, row["region"].iloc[0], row["name"].iloc[0]))
    regular = list(
        zip(admin1["adm1_code"], admin1.geometry, admin1["adm0_a3"], admin1["region"], admin1["name"], strict=True)
    )
    regular = [r for r in regular if r[2] in a0]  # disputed areas only through their countries
    finer = finer or []
    units = pd.DataFrame(
        finer + special + regular + remainders, columns=["key", "geometry", "country", "region", "admin1"]
    )
    geoms = units["geometry"].to_numpy().copy()
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="overlaps")
    if finer:  # an admin-1 unit contains its admin-2 units: it loses them
        ci, cj = tree.query(geoms, predicate="contains")
        i, j = np.concatenate([i, ci]), np.concatenate([j, cj])
    later = i > j  # (i, j) with j earlier: i loses the overlap (the enrichment's first-hit rule)
    i, j = i[later], j[later]
    losers = np.unique(i)
    tasks = [(shapely.to_wkb(geoms[k]), shapely.to_wkb(geoms[j[i == k]])) for k in losers]
    if workers > 1 and len(tasks) > 64:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            cut = list(pool.map(_difference, tasks, chunksize=64))
    else:
        cut = [_difference(t) for t in tasks]
    geoms[losers] = shapely.from_wkb(cut)
    units["geometry"] = shapely.make_valid(geoms)
    return units


def _adjacency(geoms: np.ndarray, tolerance: float) -> list[set[int]]:
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="dwithin", distance=tolerance)
    neighbours: list[set[int]] = [set() for _ in range(len(geoms))]
    for i, j in zip(a, b):
        if i != j:
            neighbours[i].add(int(j))
    return neighbours


# -- merging ---------------------------------------------------------------------------------


def _centroid(xyz_sum: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(xyz_sum)
    return xyz_sum / n if n > 0 else xyz_sum


def merge_small(
    unit_cell: np.ndarray,
    unit_country: np.ndarray,
    unit_region: np.ndarray,
    unit_count: np.ndarray,
    unit_xyz: np.ndarray,
    neighbours: list[set[int]],
    min_size: int,
) -> tuple[np.ndarray, set[int]]:
    """Merge cells (groups of units, ``unit_cell``) under ``min_size`` within their country.
    Returns the new unit -> cell map and the ids of whole-country cells under the minimum."""
    cells: dict[int, dict] = {}
    for u, c in enumerate(unit_cell):
        if c < 0:
            continue
        cell = cells.setdefault(int(c), {"units": set(), "n": 0, "xyz": np.zeros(3), "regions": set()})
        cell["units"].add(u)
        cell["n"] += int(unit_count[u])
        cell["xyz"] = cell["xyz"] + unit_xyz[u]
        cell["country"] = unit_country[u]
        if unit_region[u] is not None and not pd.isna(unit_region[u]):
            cell["regions"].add(unit_region[u])
    owner = np.array(unit_cell, dtype=np.int64)

    by_country: dict[str, set[int]] = {}
    for c, cell in cells.items():
        by_country.setdefault(cell["country"], set()).add(c)
    small_countries: set[int] = set()
    for country, ids in by_country.items():
        if sum(cells[c]["n"] for c in ids) < min_size:  # rule 3: the country is one cell
            keep = min(ids)
            for c in sorted(ids - {keep}):
                _absorb(cells, owner, keep, c)
            by_country[country] = {keep}
            small_countries.add(keep)

    heap = [(cell["n"], c) for c, cell in cells.items() if cell["n"] < min_size and c not in small_countries]
    heapq.heapify(heap)
    while heap:
        n, c = heapq.heappop(heap)
        if c not in cells or cells[c]["n"] != n or n >= min_size:
            continue
        cell = cells[c]
        adjacent = {int(owner[v]) for u in cell["units"] for v in neighbours[u]} - {c}
        same_country = by_country[cell["country"]] - {c}
        adjacent &= same_country
        tiers = [
            {a for a in adjacent if cells[a]["regions"] & cell["regions"]},
            adjacent,
            same_country,
        ]
        target_pool = next((t for t in tiers if t), None)
        if target_pool is None:  # alone in its country yet above the country minimum: impossible
            continue
        here = _centroid(cell["xyz"])
        target = max(sorted(target_pool), key=lambda a: float(here @ _centroid(cells[a]["xyz"])))
        _absorb(cells, owner, target, c)
        by_country[cell["country"]].discard(c)
        if cells[target]["n"] < min_size:
            heapq.heappush(heap, (cells[target]["n"], target))
    return owner, small_countries


def _absorb(cells: dict, owner: np.ndarray, keep: int, gone: int) -> None:
    a, b = cells[keep], cells.pop(gone)
    a["units"] |= b["units"]
    a["n"] += b["n"]
    a["xyz"] = a["xyz"] + b["xyz"]
    a["regions"] |= b["regions"]
    for u in b["units"]:
        owner[u] = keep


# -- splitting -------------------------------------------------------------------------------


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
    for _ in range(10 * len(labels) + 10):
        ids = np.unique(labels)
        sizes = np.array([w[labels == g].sum() for g in ids])
        if len(ids) > 1 and sizes.min() < min_size:
            g = ids[np.argmin(sizes)]
            centres = np.array([np.average(xy[labels == h], axis=0, weights=w[labels == h]) for h in ids])
            here = centres[ids == g][0]
            d = np.linalg.norm(centres - here, axis=1)
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


def split_cell(lat, lon, weight, parent_wkb: bytes, cfg: GeocellsConfig) -> tuple[np.ndarray, list[bytes]]:
    """Split one cell's unique sites into groups within bounds; returns each site's group and
    each group's polygon (WKB), groups numbered 0..k-1."""
    from sklearn.cluster import OPTICS

    lat, lon, weight = np.asarray(lat), np.asarray(lon), np.asarray(weight)
    xy = _local_xy(lat, lon)
    n = len(lat)
    labels = np.zeros(n, dtype=np.int64)
    if n >= max(cfg.optics.min_samples, 2):
        optics = OPTICS(
            min_samples=cfg.optics.min_samples,
            xi=cfg.optics.xi,
            min_cluster_size=max(2, min(cfg.optics.min_cluster_size, n)),
            max_eps=cfg.optics.max_eps_km / EARTH_RADIUS_KM,
            metric="haversine",
        )
        labels = optics.fit(np.radians(np.stack([lat, lon], axis=1))).labels_.astype(np.int64)
        if (labels < 0).all():
            labels[:] = 0
        elif (labels < 0).any():  # noise joins the cluster of its nearest clustered site
            clustered = np.flatnonzero(labels >= 0)
            _, nearest = cKDTree(xy[clustered]).query(xy[labels < 0])
            labels[labels < 0] = labels[clustered[nearest]]
    labels = balance_groups(labels, xy, weight, cfg.min_cell_size, cfg.max_cell_size)
    _, labels = np.unique(labels, return_inverse=True)
    return labels, _group_polygons(lat, lon, labels, shapely.from_wkb(parent_wkb))


def _group_polygons(lat, lon, labels, parent) -> list[bytes]:
    k = int(labels.max()) + 1
    if k == 1:
        return [shapely.to_wkb(parent)]
    sites = shapely.points(lon, lat)
    bounds = shapely.box(*shapely.bounds(shapely.union_all([parent, shapely.multipoints(sites)])))
    cells = shapely.voronoi_polygons(shapely.multipoints(sites), extend_to=bounds.buffer(1.0), ordered=True)
    voronoi = np.array(shapely.get_parts(cells))
    regions = [shapely.intersection(shapely.union_all(voronoi[labels == g]), parent) for g in range(k)]
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


def _split_task(args):
    return split_cell(*args)


# -- the whole build -------------------------------------------------------------------------


def _admin2_units(points: pd.DataFrame, keys: np.ndarray, admin2, name_field: str) -> list:
    """Admin-2 units holding training points (their keys updated in place): the finest level,
    when the user gave an admin-2 file. Country and region (the admin-1 code, for the merge
    preference) are those of the unit's points."""
    from ml.geo.boundaries import _first_hit

    geoms = admin2.geometry.to_numpy()
    hit = _first_hit(shapely.STRtree(geoms), shapely.points(points["lon"], points["lat"]), len(points))
    units = []
    for h in np.unique(hit[hit >= 0]):
        mine = hit == h

        def mode(col: str, mine=mine):
            return pd.Series(points[col].to_numpy()[mine]).mode().iloc[0]

        key = f"A2:{h}"
        keys[mine] = key
        name = f"{admin2[name_field].iloc[h]}, {mode('admin1')}" if name_field else mode("admin1")
        units.append((key, geoms[h], mode("adm0_a3"), mode("adm1_code"), name))
    return units


def build_geocells(
    points: pd.DataFrame, admin0, admin1, cfg: GeocellsConfig, admin2=None, admin2_name: str = ""
) -> Geocells:
    """Geocells from training points (columns id, lat, lon, adm0_a3, adm1_code, admin1), from
    admin-2 units when ``admin2`` polygons are given, else admin-1."""
    lap = Laps()
    seconds = lap.seconds
    points = points.reset_index(drop=True)
    lat, lon = points["lat"].to_numpy(np.float64), points["lon"].to_numpy(np.float64)
    xyz = to_unit_xyz(lat, lon)
    keys = _unit_keys(points, admin1)
    finer = _admin2_units(points, keys, admin2, admin2_name) if admin2 is not None else None
    units = build_units(keys, admin0, admin1, cfg.workers, finer)
    lap("units")
    key_index = {k: i for i, k in enumerate(units["key"])}
    point_unit = np.array([key_index.get(k, -1) for k in keys])
    if (point_unit < 0).any():
        bad = sorted(set(keys[point_unit < 0]))[:5]
        raise ValueError(f"geocells: training points in units with no polygon: {bad}")
    n_units = len(units)
    unit_count = np.bincount(point_unit, minlength=n_units)
    unit_xyz = np.zeros((n_units, 3))
    np.add.at(unit_xyz, point_unit, xyz)
    unit_country = units["country"].to_numpy(dtype=object)

    # Rule 2: populated units are cells; empty units join the nearest training point's cell.
    unit_cell = np.where(unit_count > 0, np.arange(n_units), -1)
    empty = np.flatnonzero(unit_count == 0)
    empty = empty[~shapely.is_empty(units["geometry"].to_numpy()[empty])]  # wholly covered by admin-2
    reps = shapely.get_coordinates(shapely.point_on_surface(units["geometry"].to_numpy()[empty]))
    point_country = units["country"].to_numpy(dtype=object)[point_unit]
    for country in np.unique(unit_country[empty]):
        in_country = np.flatnonzero(point_country == country)
        if not len(in_country):
            continue
        mine = empty[unit_country[empty] == country]
        sel = np.isin(empty, mine)
        _, nearest = cKDTree(xyz[in_country]).query(to_unit_xyz(reps[sel, 1], reps[sel, 0]))
        unit_cell[mine] = point_unit[in_country[nearest]]
    neighbours = _adjacency(units["geometry"].to_numpy(), cfg.adjacency_deg)
    lap("attach")

    owner, small_countries = merge_small(
        unit_cell,
        unit_country,
        units["region"].to_numpy(dtype=object),
        unit_count,
        unit_xyz,
        neighbours,
        cfg.min_cell_size,
    )
    lap("merge")

    point_cell = owner[point_unit]
    cell_ids = np.unique(owner[owner >= 0])
    geoms = units["geometry"].to_numpy()
    parents = {int(c): shapely.union_all(geoms[owner == c]) for c in cell_ids}
    lap("union")

    # Split cells over the maximum, on unique sites (identical coordinates stay together).
    counts = np.bincount(point_cell, minlength=int(cell_ids.max()) + 1)
    big = [int(c) for c in cell_ids if counts[c] > cfg.max_cell_size and c not in small_countries]
    tasks, site_of = [], {}
    for c in big:
        members = np.flatnonzero(point_cell == c)
        coords = np.stack([lat[members], lon[members]], axis=1)
        uniq, inverse, weight = np.unique(coords, axis=0, return_inverse=True, return_counts=True)
        site_of[c] = (members, inverse.ravel())
        tasks.append((uniq[:, 0], uniq[:, 1], weight, shapely.to_wkb(parents[c]), cfg))
    if cfg.workers > 1 and len(tasks) > 1:
        order = np.argsort([-len(t[0]) for t in tasks])  # largest first keeps both workers busy
        with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
            done = dict(zip(order, pool.map(_split_task, [tasks[i] for i in order], chunksize=1)))
        results = [done[i] for i in range(len(tasks))]
    else:
        results = [split_cell(*t) for t in tasks]
    lap("split")

    rows = []
    for c in cell_ids:
        c = int(c)
        if c in site_of:
            continue
        members = np.flatnonzero(point_cell == c)
        kind = "country" if c in small_countries else ("unit" if (owner == c).sum() == 1 else "merged")
        rows.append((members, parents[c], kind, c))
    for c, (labels, polygons) in zip(big, results):
        members, inverse = site_of[c]
        for g, wkb in enumerate(polygons):
            rows.append((members[labels[inverse] == g], shapely.from_wkb(wkb), "split", c))

    unit_admin1 = units["admin1"].to_numpy(dtype=object)
    records = []
    for members, geom, kind, parent in rows:
        centre = _centroid(xyz[members].sum(axis=0))
        main_unit = np.bincount(point_unit[members]).argmax()
        records.append(
            {
                "geometry": geom,
                "centroid_lat": float(np.degrees(np.arcsin(np.clip(centre[2], -1, 1)))),
                "centroid_lon": float(np.degrees(np.arctan2(centre[1], centre[0]))),
                "n_points": int(len(members)),
                "country": unit_country[main_unit],
                "admin1": unit_admin1[main_unit],
                "unit": units["key"].iloc[main_unit],
                "kind": kind,
                "parent": int(parent),
                "_members": members,
            }
        )
    records.sort(key=lambda r: (str(r["country"]), str(r["unit"]), r["centroid_lat"], r["centroid_lon"]))
    cells, assignments = assemble_cells(records, points, lat, lon)
    lap("assemble")
    return Geocells(cells=cells, assignments=assignments, seconds=seconds, split_parents={c: parents[c] for c in big})


def assemble_cells(records: list[dict], points: pd.DataFrame, lat, lon) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sorted cell records (each with its point indices under ``_members``) -> the cells table
    (cell id = position) and every point's assignment."""
    final_cell = np.full(len(points), -1, dtype=np.int64)
    for i, r in enumerate(records):
        final_cell[r.pop("_members")] = i
        r["cell_id"] = i
    cells = pd.DataFrame(records)
    cells = cells[["cell_id"] + [c for c in cells.columns if c != "cell_id"]]
    assignments = pd.DataFrame({"id": points["id"].to_numpy(), "lat": lat, "lon": lon, "cell_id": final_cell})
    return cells, assignments


def build_cells(
    points: pd.DataFrame, admin0, admin1, cfg: GeocellsConfig, admin2=None, admin2_name: str = ""
) -> Geocells:
    """The configured builder: semantic cells, or naive boxes (``naive_cells`` of them, or as
    many as the semantic build makes, for a comparison at equal count)."""
    if cfg.builder == "semantic":
        return build_geocells(points, admin0, admin1, cfg, admin2, admin2_name)
    from ml.geo.naive import build_naive_geocells

    lap = Laps()
    n = cfg.naive_cells or len(build_geocells(points, admin0, admin1, cfg, admin2, admin2_name).cells)
    lap("semantic_count")
    cells = build_naive_geocells(points, n)
    cells.seconds = lap.seconds | cells.seconds
    return cells


# -- lookup and checks -----------------------------------------------------------------------


class GeocellIndex:
    """(lat, lon) -> cell id: the containing cell polygon, else the nearest training point's cell."""

    def __init__(self, geometries, site_lat, site_lon, site_cell):
        self.geoms = np.asarray(geometries)
        self.tree = shapely.STRtree(self.geoms)
        self.site_tree = cKDTree(to_unit_xyz(site_lat, site_lon))
        self.site_cell = np.asarray(site_cell)

    @classmethod
    def from_geocells(cls, g: Geocells) -> GeocellIndex:
        a = g.assignments
        return cls(g.cells["geometry"].to_numpy(), a["lat"], a["lon"], a["cell_id"])

    def lookup(self, lat, lon) -> np.ndarray:
        lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        pi, gi = self.tree.query(shapely.points(lon, lat), predicate="intersects")
        out = np.full(len(lat), -1, dtype=np.int64)
        order = np.lexsort((gi, pi))
        pi, gi = pi[order], gi[order]
        first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, bool)
        out[pi[first]] = gi[first]
        miss = out < 0
        if miss.any():
            _, idx = self.site_tree.query(to_unit_xyz(lat[miss], lon[miss]))
            out[miss] = self.site_cell[idx]
        return out


def check_geocells(g: Geocells, points: pd.DataFrame, cfg: GeocellsConfig) -> dict[str, int]:
    """Counts of each invariant's violations (all zero for a correct build). Sizes are checked
    against [min, max] except whole small countries (rule 3). Naive boxes are checked for what
    they promise (a partition, every point once, the lookup) and not for sizes or borders."""
    cells, a = g.cells, g.assignments
    naive = bool(len(cells)) and bool((cells["kind"] == "naive").all())
    geoms = cells["geometry"].to_numpy()
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="overlaps")
    keep = i < j
    overlap_area = shapely.area(shapely.intersection(geoms[i[keep]], geoms[j[keep]]))
    looked_up = GeocellIndex.from_geocells(g).lookup(a["lat"], a["lon"])
    shared = {
        "points_without_cell": int((a["cell_id"] < 0).sum()),
        "points_in_several_cells": int(a["id"].duplicated().sum()),
        "overlapping_cell_pairs": int((overlap_area > 1e-9).sum()),
        "lookup_disagrees_with_assignment": int((looked_up != a["cell_id"].to_numpy()).sum()),
    }
    if naive:
        return shared
    sizes = np.bincount(a["cell_id"][a["cell_id"] >= 0], minlength=len(cells))
    country_cell = cells["kind"].to_numpy() == "country"
    point_country = points.set_index("id").loc[a["id"], "adm0_a3"].to_numpy()
    countries_per_cell = pd.Series(point_country).groupby(a["cell_id"].to_numpy()).nunique()
    cover = 0
    for parent, children in cells[cells["kind"] == "split"].groupby("parent"):
        union = shapely.union_all(children["geometry"].to_numpy())
        whole = g.split_parents.get(parent, union)
        gap = shapely.area(shapely.symmetric_difference(union, whole))
        if gap > 1e-6 * max(shapely.area(whole), 1e-9):
            cover += 1
    return shared | {
        "cells_below_min": int(((sizes < cfg.min_cell_size) & ~country_cell).sum()),
        "cells_above_max": int((sizes > cfg.max_cell_size).sum()),
        "cells_across_borders": int((countries_per_cell > 1).sum()),
        "split_children_not_covering_parent": cover,
    }


def offshore_cells(g: Geocells) -> int:
    """Cells whose points all lie off the coast (snapped within the cap): their polygon is
    empty, and the lookup reaches them through their points. Not a violation."""
    return int(shapely.is_empty(g.cells["geometry"].to_numpy()).sum())


def oracle_distances(g: Geocells, lat, lon) -> np.ndarray:
    """km from each point to the centroid of the cell it falls in: what a perfect cell
    classifier would score with these cells."""
    cells = GeocellIndex.from_geocells(g).lookup(lat, lon)
    centre = g.cells.set_index("cell_id").loc[cells]
    return haversine_km(lat, lon, centre["centroid_lat"].to_numpy(), centre["centroid_lon"].to_numpy())


def load_geocells(folder) -> Geocells:
    """Geocells as the geocells asset wrote them (GeoParquet cells + DuckDB assignments)."""
    from pathlib import Path

    import geopandas as gpd

    from ml.store import read_table

    folder = Path(folder)
    cells = pd.DataFrame(gpd.read_parquet(folder / "geocells.parquet"))
    cells["geometry"] = cells["geometry"].to_numpy()
    return Geocells(cells=cells, assignments=read_table(folder / "geocells.duckdb", "assignments"))
