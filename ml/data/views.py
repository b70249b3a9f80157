"""location_images: every accepted location's views, from the source chosen in params.

A source turns locations into tasks (chunks of views) and a task into ``View`` results; the
builder runs tasks on ``workers`` processes, checks every view, and writes the stored ones to
shards (``ml.data.images``). Sources:

- ``terrain``: ``views`` renders per location at headings 0, 360/views, ... (``ml.data.terrain``).
- ``files``: the image files a location names (``image_paths`` from a manifest or an EXIF
  photo folder), 1..N views, each through the shared validation, then fitted to
  ``image_size``.
- ``streetview``: the Google Street View Static API (``ml.data.streetview``): a panorama per
  location, ``views`` images at headings 0, 360/views, ...; locations without coverage are
  skipped with the reason; the downloaded bytes pass the shared validation.

Counts reconcile: views expected = views stored + views rejected; a location with no view
left (or, for streetview, no panorama) is rejected as a whole.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from ml.data.streetview import fetch_streetview
from ml.data.images import ImageRejected, ShardWriter, View, encode, fit_square, load_image
from ml.data.streetview import PANORAMA_COLUMNS
from ml.settings import StreetViewConfig
from ml.data.terrain import TerrainRenderer, view_seed
from ml.settings import TerrainConfig
from ml.geo.reference import ReferenceData
from ml.settings import ImagesConfig

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ["location_id", "view", "heading", "key", "width", "height", "source", "water_fraction", "original"]
REJECTED_COLUMNS = ["location_id", "view", "source", "original", "reason", "detail"]


@dataclass
class ImagesResult:
    images: pd.DataFrame
    rejected: pd.DataFrame
    rejected_locations: pd.DataFrame
    views_expected: int
    n_locations: int
    panoramas: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PANORAMA_COLUMNS))
    counts: dict = field(default_factory=dict)  # source-specific counts (streetview: requests, cache hits)


# -- terrain ---------------------------------------------------------------------------------

_RENDERERS: dict[tuple, TerrainRenderer] = {}


def _renderer(reference: Path, cfg: ImagesConfig) -> TerrainRenderer:
    key = (str(reference), cfg.terrain, cfg.image_size)
    if key not in _RENDERERS:
        _RENDERERS[key] = TerrainRenderer(ReferenceData(reference), cfg.terrain, cfg.image_size)
    return _RENDERERS[key]


def terrain_tasks(locations: pd.DataFrame, cfg: ImagesConfig) -> list[tuple]:
    ids = np.repeat(locations["id"].to_numpy(dtype=object), cfg.views)
    view = np.tile(np.arange(cfg.views), len(locations))
    heading = view * (360.0 / cfg.views)
    lat = np.repeat(locations["lat"].to_numpy(np.float64), cfg.views)
    lon = np.repeat(locations["lon"].to_numpy(np.float64), cfg.views)
    step = cfg.chunk_views
    return [
        (ids[i : i + step], view[i : i + step], heading[i : i + step], lat[i : i + step], lon[i : i + step])
        for i in range(0, len(ids), step)
    ]


def terrain_run(task: tuple, cfg: ImagesConfig, reference: Path) -> list[View]:
    ids, view, heading, lat, lon = task
    seeds = [view_seed(cfg.seed, i, v) for i, v in zip(ids, view)]
    images, water = _renderer(reference, cfg).render(lat, lon, heading, seeds)
    return [
        View(str(i), int(v), float(h), encode(img, cfg.encoding, cfg.jpeg_quality), float(w))
        for i, v, h, img, w in zip(ids, view, heading, images, water)
    ]


# -- files -----------------------------------------------------------------------------------


def files_tasks(locations: pd.DataFrame, cfg: ImagesConfig) -> list[tuple]:
    items = []
    headings = locations["heading"].to_numpy(np.float64) if "heading" in locations else None
    for row, (loc_id, paths) in enumerate(zip(locations["id"], locations["image_paths"])):
        paths = list(paths) if paths is not None else []
        for v, p in enumerate(paths):
            items.append((str(loc_id), v, float(headings[row]) if headings is not None else float("nan"), str(p)))
    step = max(1, cfg.chunk_views)
    return [items[i : i + step] for i in range(0, len(items), step)]


def files_run(task: list[tuple], cfg: ImagesConfig, root: Path) -> list[View]:
    out = []
    for loc_id, v, heading, original in task:
        path = Path(original)
        path = path if path.is_absolute() else root / path
        try:
            rgb = fit_square(load_image(path, cfg.max_pixels), cfg.image_size)
            out.append(View(loc_id, v, heading, encode(rgb, cfg.encoding, cfg.jpeg_quality), original=original))
        except ImageRejected as e:
            out.append(View(loc_id, v, heading, None, original=original, reason=e.reason, detail=e.detail))
    return out


@dataclass(frozen=True)
class Source:
    tasks: Callable[[pd.DataFrame, ImagesConfig], list]
    run: Callable[..., list[View]]
    count: Callable[[object], int]  # views in a task
    # What run's third argument is: the reference folder (terrain) or the project root (files).
    needs: Literal["reference", "root"]


SOURCES = {
    "terrain": Source(terrain_tasks, terrain_run, lambda task: len(task[0]), "reference"),
    "files": Source(files_tasks, files_run, len, "root"),
}


def build_location_images(
    locations: pd.DataFrame,
    cfg: ImagesConfig,
    reference: Path,
    root: Path,
    out_folder: Path,
    progress: Callable[[int, int], None] | None = None,
) -> ImagesResult:
    """Produce, check and store the views of ``locations`` into ``out_folder``."""
    if cfg.source == "streetview":
        return _streetview(locations, cfg, root, out_folder, progress)
    source = SOURCES[cfg.source]
    tasks = source.tasks(locations, cfg)
    expected = sum(source.count(t) for t in tasks)
    arg = reference if source.needs == "reference" else root
    with contextlib.ExitStack() as stack:
        if cfg.workers > 1 and len(tasks) > 1:
            # spawn: the caller (a Dagster step) has threads, which fork does not carry safely.
            pool = stack.enter_context(ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")))
            results: Iterable[list[View]] = pool.map(source.run, tasks, repeat(cfg), repeat(arg))
        else:
            results = (source.run(t, cfg, arg) for t in tasks)
        images, rejected = _store(results, cfg, out_folder, expected, progress)
    return _result(images, rejected, locations, expected)


def _streetview(locations, cfg: ImagesConfig, root: Path, out_folder: Path, progress) -> ImagesResult:
    def encode_view(data: bytes):
        try:
            return encode(fit_square(load_image(data, cfg.max_pixels), cfg.image_size), cfg.encoding, cfg.jpeg_quality), None
        except ImageRejected as e:
            return None, e

    fetched = fetch_streetview(locations, cfg.views, cfg.streetview, root, encode_view, progress)
    expected = len(fetched.views)
    images, rejected = _store([fetched.views], cfg, out_folder, expected, None)
    result = _result(images, rejected, locations, expected, fetched.skipped)
    result.panoramas, result.counts = fetched.panoramas, fetched.counts
    return result


def _store(results, cfg, out_folder, expected, progress):
    images, rejected = [], []
    done = 0
    with ShardWriter(out_folder, cfg.shard_views) as writer:
        for chunk in results:
            for v in chunk:
                if v.data is None:
                    rejected.append((v.location_id, v.view, cfg.source, v.original, v.reason, v.detail))
                    continue
                key = writer.add(v.data)
                size = cfg.image_size
                images.append((v.location_id, v.view, v.heading, key, size, size, cfg.source, v.water_fraction, v.original))
            done += len(chunk)
            if progress:
                progress(done, expected)
    return images, rejected


def _result(images, rejected, locations, expected, skipped: pd.DataFrame | None = None) -> ImagesResult:
    images_df = pd.DataFrame(images, columns=IMAGE_COLUMNS)
    rejected_df = pd.DataFrame(rejected, columns=REJECTED_COLUMNS)
    skipped = skipped if skipped is not None else pd.DataFrame(columns=["location_id", "reason", "detail"])
    stored_ids = set(images_df["location_id"]) | set(skipped["location_id"].astype(str))
    lost = locations[~locations["id"].astype(str).isin(stored_ids)]
    rejected_locations = pd.DataFrame(
        {
            "location_id": lost["id"].astype(str).to_numpy(),
            "reason": "no valid view",
            "detail": [
                "; ".join(rejected_df.loc[rejected_df["location_id"] == i, "reason"].astype(str)) or "no image given"
                for i in lost["id"].astype(str)
            ],
        }
    )
    rejected_locations = pd.concat([skipped, rejected_locations], ignore_index=True) if len(skipped) else rejected_locations
    assert len(images_df) + len(rejected_df) == expected
    return ImagesResult(images_df, rejected_df, rejected_locations, expected, len(locations))
