"""raw_locations: the corpus (the configured source plus every landed batch), every row accepted
or rejected with a reason."""

from __future__ import annotations

import pandas as pd

from ml.data.corpus import load_corpus
from ml.data.sources import SourceResult
from ml.landing import landed_batches
from ml.paths import Paths
from ml.settings import RawLocationsConfig
from ml.store import read_table, write_tables

STAGE = "raw_locations"


def run_raw_locations(paths: Paths, cfg: RawLocationsConfig, landing: str) -> SourceResult:
    """Tables ``locations``, ``rejected`` (each with its ``batch``), ``batches`` (per batch: its
    signature and counts) and the sources' own (photo folders: the EXIF read)."""
    batches = landed_batches(paths.resolve(landing))
    result = load_corpus(cfg, paths.resolve(cfg.path), batches, paths.root)
    tables = {"locations": result.locations, "rejected": result.rejected} | result.tables
    write_tables(paths.asset_db(STAGE), tables)
    return result


def read_raw_locations(paths: Paths, table: str = "locations") -> pd.DataFrame:
    """The accepted locations (or ``table``: ``rejected``, a source's own)."""
    return read_table(paths.asset_db(STAGE), table)
