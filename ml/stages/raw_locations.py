"""raw_locations: the configured source's locations, every row accepted or rejected with a reason."""

from __future__ import annotations

import pandas as pd

from ml.data.sources import SourceResult, load_raw_locations
from ml.paths import Paths
from ml.settings import RawLocationsConfig
from ml.store import read_table, write_tables

STAGE = "raw_locations"


def run_raw_locations(paths: Paths, cfg: RawLocationsConfig) -> SourceResult:
    """Tables ``locations``, ``rejected`` and the source's own (exif_folder: the EXIF read)."""
    result = load_raw_locations(cfg, paths.resolve(cfg.path), paths.root)
    tables = {"locations": result.locations, "rejected": result.rejected} | result.tables
    write_tables(paths.asset_db(STAGE), tables)
    return result


def read_raw_locations(paths: Paths, table: str = "locations") -> pd.DataFrame:
    """The accepted locations (or ``table``: ``rejected``, a source's own)."""
    return read_table(paths.asset_db(STAGE), table)
