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
   ``max >= 2 * min - 1`` guarantees), until every group is within bounds. A cell of more
   than ``optics.max_sites`` unique sites (at least 4 x max) is first cut at the median of its
   principal axis, recursively, into pieces of at most that many, each clustered and balanced
   on its own (OPTICS on one dense unit of PIGEOTTO's size is where a build explodes). Identical
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

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from ml.geo.boundaries import first_hit
from ml.geo.cells import Geocells, assemble_cells, cell_record
from ml.geo.cellsplit import cluster_sites, group_polygons, pieces
from ml.geo.haversine import to_unit_xyz, unit
from ml.settings import GeocellsConfig
from ml.timing import Laps

log = logging.getLogger(__name__)


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


def build_units(keys: np.ndarray, admin0, admin1, pool=None, finer: list | None = None) -> pd.DataFrame:
    """Disjoint unit polygons: key, geometry, country (adm0_a3), region, admin1 name. ``finer``
    units (admin-2) come first, so the admin-1 units keep only what they do not cover. ``pool``:
    the build's worker processes (None: this process)."""
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
    cut = (
        list(pool.map(_difference, tasks, chunksize=64))
        if pool and len(tasks) > 64
        else [_difference(t) for t in tasks]
    )
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
        here = unit(cell["xyz"])
        target = max(sorted(target_pool), key=lambda a: float(here @ unit(cells[a]["xyz"])))
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


# -- the whole build -------------------------------------------------------------------------


def _admin2_units(points: pd.DataFrame, keys: np.ndarray, admin2, name_field: str) -> list:
    """Admin-2 units holding training points (their keys updated in place): the finest level,
    when the user gave an admin-2 file. Country and region (the admin-1 code, for the merge
    preference) are those of the unit's points."""
    geoms = admin2.geometry.to_numpy()
    hit = first_hit(shapely.STRtree(geoms), shapely.points(points["lon"], points["lat"]), len(points))
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


def _attach_empty_units(units: pd.DataFrame, point_unit: np.ndarray, unit_count: np.ndarray, xyz) -> np.ndarray:
    """Rule 2: each populated unit is a cell; an empty unit joins the cell of the nearest
    training point of its country (unit -> cell, -1 for units of countries with no point)."""
    n_units = len(units)
    unit_country = units["country"].to_numpy(dtype=object)
    unit_cell = np.where(unit_count > 0, np.arange(n_units), -1)
    empty = np.flatnonzero(unit_count == 0)
    empty = empty[~shapely.is_empty(units["geometry"].to_numpy()[empty])]  # wholly covered by admin-2
    reps = shapely.get_coordinates(shapely.point_on_surface(units["geometry"].to_numpy()[empty]))
    point_country = unit_country[point_unit]
    for country in np.unique(unit_country[empty]):
        in_country = np.flatnonzero(point_country == country)
        if not len(in_country):
            continue
        mine = empty[unit_country[empty] == country]
        sel = np.isin(empty, mine)
        _, nearest = cKDTree(xyz[in_country]).query(to_unit_xyz(reps[sel, 1], reps[sel, 0]))
        unit_cell[mine] = point_unit[in_country[nearest]]
    return unit_cell


def _split_big(big: list[int], point_cell, lat, lon, parents: dict, cfg: GeocellsConfig, pool):
    """Rule 5 for every cell in ``big``, on unique sites (identical coordinates stay together):
    each cell's sites cut into pieces of at most ``optics.max_sites`` (``pieces``), every piece
    clustered and balanced, then each cell's group polygons, both over ``cfg.workers`` processes
    (largest tasks first; the result does not depend on the worker count). Returns per cell its
    members and each member's site, and per cell (site labels, group polygons)."""
    limit = max(cfg.optics.max_sites, 4 * cfg.max_cell_size)
    site_of, sites, tasks, owner = {}, [], [], []
    for c in big:
        members = np.flatnonzero(point_cell == c)
        coords = np.stack([lat[members], lon[members]], axis=1)
        uniq, inverse, weight = np.unique(coords, axis=0, return_inverse=True, return_counts=True)
        site_of[c] = (members, inverse.ravel())
        sites.append((uniq[:, 0], uniq[:, 1]))
        for piece in pieces(uniq[:, 0], uniq[:, 1], limit):
            tasks.append((uniq[piece, 0], uniq[piece, 1], weight[piece], cfg))
            owner.append((len(sites) - 1, piece))
    piece_labels = _pool_map(_cluster_task, tasks, pool)
    labels = [np.zeros(len(la), dtype=np.int64) for la, _ in sites]
    offset = [0] * len(sites)
    for (i, piece), got in zip(owner, piece_labels):
        labels[i][piece] = got + offset[i]
        offset[i] += int(got.max()) + 1
    shapes = [(la, lo, lab, shapely.to_wkb(parents[c])) for (la, lo), lab, c in zip(sites, labels, big)]
    polygons = _pool_map(_polygon_task, shapes, pool)
    return site_of, list(zip(labels, polygons))


def _pool_map(fn, tasks: list, pool) -> list:
    if pool is None or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    order = np.argsort([-len(t[0]) for t in tasks], kind="stable")  # largest first keeps every worker busy
    done = dict(zip(order.tolist(), pool.map(fn, [tasks[i] for i in order], chunksize=1)))
    return [done[i] for i in range(len(tasks))]


def _cluster_task(args):
    return cluster_sites(*args)


def _polygon_task(args):
    return group_polygons(*args)


def build_geocells(
    points: pd.DataFrame, admin0, admin1, cfg: GeocellsConfig, admin2=None, admin2_name: str = ""
) -> Geocells:
    """Geocells from training points (columns id, lat, lon, adm0_a3, adm1_code, admin1), from
    admin-2 units when ``admin2`` polygons are given, else admin-1. One pool of ``cfg.workers``
    processes serves the whole build (spawned once)."""
    if cfg.workers <= 1:
        return _build(points, admin0, admin1, cfg, admin2, admin2_name, None)
    with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
        return _build(points, admin0, admin1, cfg, admin2, admin2_name, pool)


def _build(points: pd.DataFrame, admin0, admin1, cfg: GeocellsConfig, admin2, admin2_name: str, pool) -> Geocells:
    lap = Laps()
    points = points.reset_index(drop=True)
    lat, lon = points["lat"].to_numpy(np.float64), points["lon"].to_numpy(np.float64)
    xyz = to_unit_xyz(lat, lon)
    keys = _unit_keys(points, admin1)
    finer = _admin2_units(points, keys, admin2, admin2_name) if admin2 is not None else None
    units = build_units(keys, admin0, admin1, pool, finer)
    lap("units")
    key_index = {k: i for i, k in enumerate(units["key"])}
    point_unit = np.array([key_index.get(k, -1) for k in keys])
    if (point_unit < 0).any():
        bad = sorted(set(keys[point_unit < 0]))[:5]
        raise ValueError(f"geocells: training points in units with no polygon: {bad}")
    unit_count = np.bincount(point_unit, minlength=len(units))
    unit_xyz = np.zeros((len(units), 3))
    np.add.at(unit_xyz, point_unit, xyz)
    unit_cell = _attach_empty_units(units, point_unit, unit_count, xyz)
    neighbours = _adjacency(units["geometry"].to_numpy(), cfg.adjacency_deg)
    lap("attach")

    unit_country = units["country"].to_numpy(dtype=object)
    region = units["region"].to_numpy(dtype=object)
    owner, small = merge_small(unit_cell, unit_country, region, unit_count, unit_xyz, neighbours, cfg.min_cell_size)
    lap("merge")

    point_cell = owner[point_unit]
    cell_ids = np.unique(owner[owner >= 0])
    geoms = units["geometry"].to_numpy()
    parents = {int(c): shapely.union_all(geoms[owner == c]) for c in cell_ids}
    lap("union")

    counts = np.bincount(point_cell, minlength=int(cell_ids.max()) + 1)
    big = [int(c) for c in cell_ids if counts[c] > cfg.max_cell_size and c not in small]
    site_of, results = _split_big(big, point_cell, lat, lon, parents, cfg, pool)
    lap("split")

    rows = []
    for c in (int(c) for c in cell_ids if int(c) not in site_of):
        kind = "country" if c in small else ("unit" if (owner == c).sum() == 1 else "merged")
        rows.append((np.flatnonzero(point_cell == c), parents[c], kind, c))
    for c, (labels, polygons) in zip(big, results):
        members, inverse = site_of[c]
        rows += [(members[labels[inverse] == g], shapely.from_wkb(wkb), "split", c) for g, wkb in enumerate(polygons)]
    unit_admin1, unit_key = units["admin1"].to_numpy(dtype=object), units["key"].to_numpy(dtype=object)
    records = []
    for members, geom, kind, parent in rows:
        main = np.bincount(point_unit[members]).argmax()
        names = {"country": unit_country[main], "admin1": unit_admin1[main], "unit": unit_key[main]}
        records.append(cell_record(xyz, members, geom, **names, kind=kind, parent=int(parent)))
    records.sort(key=lambda r: (str(r["country"]), str(r["unit"]), r["centroid_lat"], r["centroid_lon"]))
    cells, assignments = assemble_cells(records, points, lat, lon)
    lap("assemble")
    split_parents = {c: parents[c] for c in big}
    return Geocells(cells=cells, assignments=assignments, seconds=lap.seconds, split_parents=split_parents)
