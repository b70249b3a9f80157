"""location_images: each location's views (rendered terrain, the user's files or Street View),
checked and stored in shards, with the views' table and every rejection."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ml.data.images import ImageStore, contact_sheet
from ml.data.streetview import apply_panoramas
from ml.data.views import ImagesResult, build_location_images
from ml.paths import Paths
from ml.settings import ImagesConfig
from ml.stages.enriched_locations import read_locations
from ml.store import read_table, write_tables

STAGE = "location_images"


@dataclass
class ImagesRun:
    result: ImagesResult
    contact_sheet_png: bytes  # the first locations' views
    shard_bytes: int


def run_location_images(paths: Paths, cfg: ImagesConfig, progress: Callable[[int, int], None]) -> ImagesRun:
    """Tables ``images``, ``rejected`` (views), ``rejected_locations`` and ``panoramas``
    (streetview: each location's panorama and its offset); the shards under ``paths.shards``."""
    shards = paths.shards
    shutil.rmtree(shards, ignore_errors=True)
    result = build_location_images(read_locations(paths), cfg, paths.reference, paths.root, shards, progress)
    tables = {"images": result.images, "rejected": result.rejected}
    tables |= {"rejected_locations": result.rejected_locations, "panoramas": result.panoramas}
    write_tables(paths.asset_db(STAGE), tables)
    images = result.images
    sample = images[images["location_id"].isin(images["location_id"].drop_duplicates().head(8))]
    with open_store(paths) as store:
        sheet = contact_sheet([store.read(k) for k in sample["key"]], columns=max(1, cfg.views))
    return ImagesRun(result, sheet, sum(p.stat().st_size for p in shards.glob("*.bin")))


def read_images(paths: Paths, table: str = "images") -> pd.DataFrame:
    """One row per stored view: location_id, view, key (into the shards), ... (or ``table``:
    ``rejected`` views, ``rejected_locations``, ``panoramas``)."""
    return read_table(paths.asset_db(STAGE), table)


def read_located(paths: Paths, locations: pd.DataFrame | None = None) -> pd.DataFrame:
    """Locations (the enriched ones by default) at the coordinates of their views: a Street View
    panorama's where one was used (``ml.data.streetview.apply_panoramas``)."""
    locations = read_locations(paths) if locations is None else locations
    return apply_panoramas(locations, read_images(paths, "panoramas"))


def open_store(paths: Paths) -> ImageStore:
    return ImageStore(paths.shards)
