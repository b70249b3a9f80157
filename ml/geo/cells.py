"""Geocells, whatever built them: the container and its configs, the record every builder
makes a cell from, the lookup (any coordinate to a cell), the invariant checks, and the pair
that writes and reads the ``geocells`` asset's files (``save_geocells`` / ``load_geocells``).

The builders: ``ml.geo.semantic`` (PIGEON's cells from admin units; its cluster-and-balance
split in ``ml.geo.cellsplit``) and ``ml.geo.naive`` (border-blind boxes, the ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from ml.geo.haversine import haversine_km, to_unit_xyz, xyz_to_latlon
from ml.settings import GeocellsConfig
from ml.store import read_table, write_tables

CELLS_FILE = "geocells.parquet"  # cell polygons (GeoParquet)


@dataclass
class Geocells:
    cells: pd.DataFrame  # cell_id, geometry (shapely), centroid_lat/lon, n_points, country, ..., kind
    assignments: pd.DataFrame  # id, lat, lon, cell_id
    seconds: dict[str, float] = field(default_factory=dict)
    split_parents: dict[int, object] = field(default_factory=dict)  # parent polygons (for checks)

    def geodataframe(self):
        import geopandas as gpd  # geopandas' import is slow; only writers of the polygons pay it

        return gpd.GeoDataFrame(self.cells, geometry="geometry", crs=4326)


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


def cell_record(xyz: np.ndarray, members: np.ndarray, geometry, **fields) -> dict:
    """One cell's row before ``assemble_cells``: its polygon, the spherical mean of its points
    (``xyz`` of every point, ``members`` its indices) and the builder's fields."""
    lat, lon = xyz_to_latlon(xyz[members].sum(axis=0)) if len(members) else (90.0, 0.0)
    return (
        {"geometry": geometry, "centroid_lat": lat, "centroid_lon": lon, "n_points": int(len(members))}
        | fields
        | {"_members": members}
    )


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


def save_geocells(g: Geocells, folder: Path, db: Path) -> None:
    """The geocells asset's files: the polygons as GeoParquet in ``folder``, the cells table
    (without polygons) and the assignments in the DuckDB file ``db``."""
    folder.mkdir(parents=True, exist_ok=True)
    g.geodataframe().to_parquet(folder / CELLS_FILE)
    write_tables(db, {"cells": g.cells.drop(columns="geometry"), "assignments": g.assignments})


def load_geocells(folder: Path, db: Path) -> Geocells:
    """Geocells as ``save_geocells`` wrote them."""
    import geopandas as gpd  # geopandas' import is slow; only readers of the polygons pay it

    cells = pd.DataFrame(gpd.read_parquet(Path(folder) / CELLS_FILE))
    cells["geometry"] = cells["geometry"].to_numpy()
    return Geocells(cells=cells, assignments=read_table(Path(db), "assignments"))
