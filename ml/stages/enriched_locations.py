"""enriched_locations: country, admin-1, town, climate, land cover, elevation, population and
the spatial split of every raw location."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ml.data.enrich import EnrichResult, enrich_locations
from ml.geo.maps import world_map_png
from ml.geo.reference import ReferenceData
from ml.paths import Paths
from ml.settings import EnrichConfig
from ml.stages.raw_locations import read_raw_locations
from ml.store import read_table, write_tables

STAGE = "enriched_locations"


@dataclass
class EnrichedRun:
    result: EnrichResult
    map_png: bytes  # the locations on a world map, coloured by split


def run_enriched_locations(paths: Paths, cfg: EnrichConfig) -> EnrichedRun:
    reference = ReferenceData(paths.reference)
    result = enrich_locations(read_raw_locations(paths), reference, cfg, paths.root)
    locations = result.locations
    write_tables(paths.asset_db(STAGE), {"locations": locations, "rejected": result.rejected})
    title = f"{len(locations):,} locations"
    picture = world_map_png(locations["lat"], locations["lon"], locations["split"], reference.admin0, title)
    return EnrichedRun(result, picture)


def read_locations(paths: Paths, split: str = "", table: str = "locations") -> pd.DataFrame:
    """The enriched locations, all or one split's (or ``table``: ``rejected``)."""
    where = f"WHERE split = '{split}'" if split else ""
    return read_table(paths.asset_db(STAGE), table, where)
