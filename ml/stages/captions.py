"""captions: PIGEON's synthetic captions for every stored view, for StreetCLIP pretraining."""

from __future__ import annotations

import pandas as pd

from ml.data.captions import caption_views
from ml.paths import Paths
from ml.settings import CaptionsConfig
from ml.stages.enriched_locations import read_locations
from ml.stages.location_images import read_images
from ml.store import read_table, write_tables

STAGE = "captions"


def run_captions(paths: Paths, cfg: CaptionsConfig) -> tuple[pd.DataFrame, int]:
    """The captions table and the number of views it captions."""
    views = read_images(paths)
    table = caption_views(views, read_locations(paths), cfg)
    write_tables(paths.asset_db(STAGE), {"captions": table})
    return table, len(views)


def read_captions(paths: Paths) -> pd.DataFrame:
    return read_table(paths.asset_db(STAGE), "captions")
