"""enriched_locations: the auxiliary attributes of every location, and the split.

For each accepted raw location: country and admin-1 (``ml.geo.boundaries``, rule there),
optional admin-2 from a user file, nearest GeoNames town, Köppen-Geiger class, MODIS land
cover, ETOPO5 elevation, a population-density proxy (``ml.geo.gazetteer``), driving side,
hemisphere, month and hemisphere-aware season when the capture time is known, and the
spatially grouped split (``ml.data.split``; with ``split.stratify`` val and test dealt by
continent and country, so that they have the same make-up). Locations with no land within the coast cap are
rejected as "not on land" with the distance.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from ml.data.split import spatial_split, split_makeup
from ml.landing import BASE
from ml.settings import SplitConfig
from ml.geo.boundaries import AdminIndex, locate, locate_admin2
from ml.geo.gazetteer import Gazetteer
from ml.geo.reference import KOPPEN_OCEAN, LANDCOVER_NAMES, ReferenceData
from ml.paths import Paths
from ml.timing import Laps
from ml.settings import Admin2Config, EnrichConfig

log = logging.getLogger(__name__)

SEASONS_NORTH = {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
                 6: "summer", 7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}
OPPOSITE = {"winter": "summer", "summer": "winter", "spring": "autumn", "autumn": "spring"}


@dataclass
class EnrichResult:
    locations: pd.DataFrame
    rejected: pd.DataFrame
    n_input: int
    seconds: dict[str, float] = field(default_factory=dict)

    def split_sizes(self) -> dict[str, int]:
        counts = self.locations["split"].value_counts()
        return {s: int(counts.get(s, 0)) for s in ("train", "val", "test", "buffer")}

    def makeup(self) -> dict:
        """val's and test's shares in each continent and the ten largest training countries."""
        loc = self.locations
        return split_makeup(loc["split"].to_numpy(), loc["continent"].to_numpy(), loc["country"].to_numpy())


def season_of(month: np.ndarray, lat: np.ndarray) -> np.ndarray:
    out = np.full(len(month), None, dtype=object)
    for i, (m, la) in enumerate(zip(month, lat)):
        if m is not None and not pd.isna(m):
            s = SEASONS_NORTH[int(m)]
            out[i] = s if la >= 0 else OPPOSITE[s]
    return out


def batch_waves(batch: pd.Series) -> np.ndarray:
    """0 for the base's locations, then 1, 2, ... per landed batch in the corpus' order."""
    landed = batch[batch != BASE]
    order = {name: i + 1 for i, name in enumerate(pd.unique(landed))}
    return batch.map(order).fillna(0).astype(np.int64).to_numpy()


def enrich_locations(raw: pd.DataFrame, reference: ReferenceData, cfg: EnrichConfig, root: Path) -> EnrichResult:
    lap = Laps()
    seconds = lap.seconds
    raw = raw.reset_index(drop=True)
    lat, lon = raw["lat"].to_numpy(np.float64), raw["lon"].to_numpy(np.float64)
    # Decoding the rasters releases the GIL: read them on the other core meanwhile.
    with ThreadPoolExecutor(max_workers=1) as pool:
        layers = {n: pool.submit(getattr, reference, n) for n in ("cities", "koppen", "landcover", "elevation")}
        return _enrich(raw, lat, lon, reference, layers, cfg, root, lap, seconds)


def _enrich(raw, lat, lon, reference, layers, cfg, root, lap, seconds) -> EnrichResult:
    index = AdminIndex.build(reference.admin0, reference.admin1)
    lap("load_boundaries")
    admin = locate(lat, lon, index, cfg.coast_cap_km)
    lap("boundaries")

    on_land = admin["on_land"].to_numpy()
    rejected = pd.DataFrame(
        {
            "id": raw["id"][~on_land].to_numpy(),
            "reason": "not on land",
            "detail": [f"nearest land {d:.1f} km (cap {cfg.coast_cap_km:g} km)" for d in admin["land_distance_km"][~on_land]],
            "row_json": [json.dumps(r, default=str) for r in raw[~on_land].to_dict(orient="records")],
        },
        columns=["id", "reason", "detail", "row_json"],
    )
    keep = raw[on_land].reset_index(drop=True)
    admin = admin[on_land].reset_index(drop=True).drop(columns="on_land")
    lat, lon = lat[on_land], lon[on_land]

    out = pd.concat([keep[["id", "lat", "lon", "source"]], admin], axis=1)
    if cfg.admin2.path:
        import geopandas as gpd

        admin2 = gpd.read_file(Paths(root).resolve(cfg.admin2.path)).to_crs(4326)
        if cfg.admin2.name_field not in admin2.columns:
            raise ValueError(
                f"{cfg.admin2.path}: no column {cfg.admin2.name_field!r} "
                f"(enriched_locations.admin2.name_field); columns: {', '.join(admin2.columns)}"
            )
        out["admin2"] = locate_admin2(lat, lon, admin2, cfg.admin2.name_field)
    else:
        out["admin2"] = None
    lap("admin2")

    gaz = Gazetteer(layers["cities"].result())
    out = pd.concat([out, gaz.nearest(lat, lon)], axis=1)
    out["population_density"] = gaz.population_density(lat, lon, cfg.population_bandwidth_km)
    lap("gazetteer")

    koppen_id = layers["koppen"].result().sample_valid(lat, lon, [0, KOPPEN_OCEAN], cfg.koppen_search_px).astype(np.int64)
    # The Köppen map leaves out small islands (Hawaii, the Balearics, the Azores): a location
    # still reading Ocean after the search has no known class (null), not an ocean climate.
    codes = reference.koppen_codes
    known = (koppen_id != KOPPEN_OCEAN) & (koppen_id != 0)
    out["koppen"] = [codes.get(int(k)) if ok else None for k, ok in zip(koppen_id, known)]
    out["koppen_id"] = pd.Series(koppen_id, dtype="Int64").where(known)
    lap("koppen")
    landcover = layers["landcover"].result().sample(lat, lon).astype(np.int64)
    out["landcover"] = landcover
    out["landcover_name"] = [LANDCOVER_NAMES.get(int(v)) for v in landcover]
    out["elevation_m"] = layers["elevation"].result().sample(lat, lon).astype(np.float64)
    lap("rasters")

    out["driving_side"] = np.where(out["country"].isin(reference.left_driving), "left", "right")
    out["hemisphere"] = np.where(lat >= 0, "N", "S")
    captured = pd.to_datetime(keep["captured_at"])
    month = captured.dt.month.astype("Int64")
    out["month"] = month
    out["season"] = season_of(month.to_numpy(dtype=object, na_value=None), lat)
    out["captured_at"] = captured
    out["heading"] = keep["heading"].to_numpy()
    out["image_paths"] = keep["image_paths"].to_numpy()
    out["batch"] = keep["batch"].to_numpy() if "batch" in keep else BASE
    strata = (out["continent"].fillna("?") + "|" + out["country"].fillna("?")).to_numpy()
    out["split"] = spatial_split(lat, lon, cfg.split, batch_waves(out["batch"]), strata)
    lap("split")
    assert len(out) + len(rejected) == len(raw)
    return EnrichResult(locations=out, rejected=rejected, n_input=len(raw), seconds=seconds)
