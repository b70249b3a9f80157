"""geocells: PIGEON's semantic geocells from the train split (or, with ``builder: naive``,
border-blind boxes of equal point count: the ablation), with their invariant checks."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import pandas as pd

from ml.geo.cells import Geocells, check_geocells, load_geocells, offshore_cells, save_geocells
from ml.geo.maps import cells_map_png
from ml.geo.naive import build_naive_geocells
from ml.geo.reference import ReferenceData
from ml.geo.semantic import build_geocells
from ml.paths import Paths
from ml.settings import Admin2Config, GeocellsConfig
from ml.stages.enriched_locations import read_locations
from ml.timing import Laps

STAGE = "geocells"


@dataclass
class GeocellsRun:
    cells: Geocells
    violations: dict[str, int]  # every invariant's count (all zero for a correct build)
    offshore_cells: int
    map_png: bytes


def build_cells(train: pd.DataFrame, reference: ReferenceData, cfg: GeocellsConfig, admin2=None, name="") -> Geocells:
    """The configured builder: semantic cells, or naive boxes (``naive_cells`` of them, or as
    many as the semantic build makes, for a comparison at equal count: that count needs the
    semantic build itself)."""
    if cfg.builder == "semantic":
        return build_geocells(train, reference.admin0, reference.admin1, cfg, admin2, name)
    lap = Laps()
    n = cfg.naive_cells or len(build_geocells(train, reference.admin0, reference.admin1, cfg, admin2, name).cells)
    lap("semantic_count")
    cells = build_naive_geocells(train, n)
    cells.seconds = lap.seconds | cells.seconds
    return cells


def run_geocells(paths: Paths, cfg: GeocellsConfig, admin2: Admin2Config) -> GeocellsRun:
    """``admin2``: enriched_locations' optional admin-2 polygons (its section is their one home)."""
    train = read_locations(paths, "train")
    reference = ReferenceData(paths.reference)
    polygons = gpd.read_file(paths.resolve(admin2.path)).to_crs(4326) if admin2.path else None
    cells = build_cells(train, reference, cfg, polygons, admin2.name_field)
    save_geocells(cells, paths.asset_dir(STAGE), paths.asset_db(STAGE))
    picture = cells_map_png(cells.geodataframe(), reference.admin0, f"{len(cells.cells)} geocells")
    return GeocellsRun(cells, check_geocells(cells, train, cfg), offshore_cells(cells), picture)


def read_geocells(paths: Paths) -> Geocells:
    return load_geocells(paths.asset_dir(STAGE), paths.asset_db(STAGE))
