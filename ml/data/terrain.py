"""The ``terrain`` image source: views rendered offline from the real reference rasters.

A view at heading h is a window ``window_km`` wide lying *ahead* of the location (the location
sits at the bottom centre), rotated so that h points up; the 4 headings of a location therefore
show different ground. Each pixel shows what the rasters hold at its ground position:

- land cover (MODIS IGBP) as the class colour; water where land cover is 0 or ETOPO5 elevation
  is below ``water_below_m`` (the Netherlands lies below sea level on the 5' grid, so 0 m would
  drown it); water is one flat colour;
- elevation as hillshade (light from the north-west, in the world frame) on land;
- Köppen-Geiger climate as a tint by climate group (tropical, arid, temperate, cold, polar);
- GeoNames towns as built-up spots whose size and brightness grow with log(population) and are
  capped, so big cities do not all look alike;
- per-view seeded photometric noise: brightness, contrast, blur, sensor noise.

Nothing else: no text, borders, coordinates or any value computed from lat/lon other than what
the rasters and the gazetteer hold there (two open-ocean views with the same noise seed are
byte-identical: tests/test_terrain.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ml.geo.haversine import KM_PER_DEG_LAT, km_to_chord, to_unit_xyz
from ml.geo.reference import KOPPEN_OCEAN, LANDCOVER_NODATA, ReferenceData
from ml.settings import NoiseConfig, TerrainConfig

WATER = 0
# IGBP class colours (MODIS convention, slightly muted); 17 = nodata shown as bare ground.
PALETTE = np.array(
    [
        (62, 98, 150),  # 0 water
        (20, 72, 32),  # 1 evergreen needleleaf forest
        (16, 104, 44),  # 2 evergreen broadleaf forest
        (84, 150, 40),  # 3 deciduous needleleaf forest
        (110, 180, 50),  # 4 deciduous broadleaf forest
        (40, 130, 50),  # 5 mixed forest
        (170, 150, 80),  # 6 closed shrubland
        (205, 190, 120),  # 7 open shrubland
        (160, 170, 70),  # 8 woody savanna
        (210, 200, 90),  # 9 savanna
        (170, 205, 90),  # 10 grassland
        (70, 150, 140),  # 11 wetland
        (215, 180, 110),  # 12 cropland
        (150, 150, 155),  # 13 urban and built-up
        (190, 170, 100),  # 14 cropland / natural mosaic
        (240, 245, 250),  # 15 snow and ice
        (225, 205, 160),  # 16 barren
        (200, 195, 185),  # 17 no data
    ],
    dtype=np.float32,
)
BUILT_UP = np.array((190, 185, 180), dtype=np.float32)
# Köppen class number -> climate group tint (A tropical, B arid, C temperate, D cold, E polar).
GROUP_TINT = {
    "A": (40, 120, 40),
    "B": (230, 180, 90),
    "C": (120, 160, 90),
    "D": (110, 130, 150),
    "E": (220, 230, 245),
}


class TerrainRenderer:
    def __init__(self, reference: ReferenceData, cfg: TerrainConfig, size: int):
        self.cfg, self.size = cfg, size
        self.landcover = reference.landcover
        self.koppen = reference.koppen
        elevation = reference.elevation
        self.elev = elevation.values.astype(np.float32)
        self.elev_step = elevation.step_lat
        codes = reference.koppen_codes
        tint = np.zeros((256, 3), np.float32)
        has_tint = np.zeros(256, bool)
        for k, code in codes.items():
            if k != KOPPEN_OCEAN and code[:1] in GROUP_TINT:
                tint[k], has_tint[k] = GROUP_TINT[code[:1]], True
        self.tint, self.has_tint = tint, has_tint
        cities = reference.cities
        self.town_xyz = to_unit_xyz(cities["lat"].to_numpy(), cities["lon"].to_numpy())
        self.town_lat = cities["lat"].to_numpy()
        self.town_lon = cities["lon"].to_numpy()
        self.town_pop = cities["population"].to_numpy(np.float64)
        self.town_tree = cKDTree(self.town_xyz)
        # Pixel grid in km: forward (up the image) and right, the location at the bottom centre.
        px_km = cfg.window_km / size
        idx = np.arange(size, dtype=np.float64)
        self.forward = ((size - 0.5 - idx) * px_km)[:, None] * np.ones((1, size))
        self.right = np.ones((size, 1)) * ((idx - size / 2 + 0.5) * px_km)[None, :]
        self.px_km = px_km

    def ground(self, lat: np.ndarray, lon: np.ndarray, heading: np.ndarray):
        """Latitude and longitude of every pixel of each view: arrays (n, size, size)."""
        th = np.radians(heading)[:, None, None]
        east = self.forward * np.sin(th) + self.right * np.cos(th)
        north = self.forward * np.cos(th) - self.right * np.sin(th)
        plat = lat[:, None, None] + north / KM_PER_DEG_LAT
        np.clip(plat, -89.99, 89.99, out=plat)
        coslat = np.maximum(np.cos(np.radians(lat)), 0.05)[:, None, None]
        plon = lon[:, None, None] + east / (KM_PER_DEG_LAT * coslat)
        plon[plon >= 180.0] -= 360.0
        plon[plon < -180.0] += 360.0
        return plat, plon

    def render(
        self, lat, lon, heading, seeds, *, with_classes: bool = False, chunk: int = 64
    ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render views: uint8 (n, size, size, 3) and each view's water fraction; with
        ``with_classes`` also the class map (IGBP class per pixel, water = 0). Works in chunks
        of views so the temporaries stay in cache."""
        lat = np.asarray(lat, np.float64)
        lon = np.asarray(lon, np.float64)
        heading = np.asarray(heading, np.float64)
        seeds = list(seeds)
        parts = [
            self._render_chunk(lat[i : i + chunk], lon[i : i + chunk], heading[i : i + chunk], seeds[i : i + chunk])
            for i in range(0, len(lat), chunk)
        ]
        if not parts:
            empty = np.zeros((0, self.size, self.size, 3), np.uint8)
            return (empty, np.zeros(0), np.zeros((0, self.size, self.size), np.int64)) if with_classes else (empty, np.zeros(0))
        images, water, classes = (np.concatenate(x) for x in zip(*parts))
        return (images, water, classes) if with_classes else (images, water)

    def _render_chunk(self, lat, lon, heading, seeds):
        cfg = self.cfg
        plat, plon = self.ground(lat, lon, heading)
        lc = self.landcover.sample(plat, plon)
        lc = np.where(lc == LANDCOVER_NODATA, 17, np.minimum(lc, 17))
        er = (plat + 90.0) / self.elev_step
        ec = (plon + 180.0) / self.elev_step
        elev = ndimage.map_coordinates(self.elev, [er.ravel(), ec.ravel()], order=1, mode="nearest").reshape(er.shape)
        water = (lc == WATER) | (elev < cfg.water_below_m)
        classes = np.where(water, WATER, lc)
        rgb = PALETTE[classes]

        # Relief: light from the north-west in the world frame, rotated into each view.
        d_fwd, d_right = np.gradient(elev, axis=(1, 2))
        scale = np.float32(1.0 / (self.px_km * 1000.0))
        th = np.radians(heading).astype(np.float32)[:, None, None]
        sin, cos = np.sin(th), np.cos(th)
        d_fwd = -d_fwd * scale  # image rows grow towards the viewer
        d_right = d_right * scale
        d_east = d_fwd * sin + d_right * cos
        d_north = d_fwd * cos - d_right * sin
        slope_to_light = (d_north - d_east) * np.float32(np.sqrt(0.5))  # light from the north-west
        shade = np.clip(1.0 + cfg.hillshade * 6.0 * slope_to_light, 0.6, 1.4)
        shade[water] = 1.0
        rgb *= shade[..., None]

        k = self.koppen.sample(plat, plon)
        tinted = self.has_tint[k] & ~water
        t = np.float32(cfg.koppen_tint)
        rgb[tinted] = (1 - t) * rgb[tinted] + t * self.tint[k[tinted]]

        self._towns(rgb, lat, lon, heading, water)
        rgb = self._noise(rgb, seeds)
        out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        return out, water.mean(axis=(1, 2)), classes

    def _towns(self, rgb, lat, lon, heading, water) -> None:
        """Blend built-up spots into ``rgb`` in place; each spot touches only its own patch."""
        cfg, size = self.cfg, self.size
        reach = float(km_to_chord(self.cfg.window_km * 1.15))
        candidates = self.town_tree.query_ball_point(to_unit_xyz(lat, lon), reach)
        for v, towns in enumerate(candidates):
            if not towns:
                continue
            towns = np.asarray(towns)
            coslat = max(np.cos(np.radians(lat[v])), 0.05)
            dlon = (self.town_lon[towns] - lon[v] + 180.0) % 360.0 - 180.0
            east = dlon * KM_PER_DEG_LAT * coslat
            north = (self.town_lat[towns] - lat[v]) * KM_PER_DEG_LAT
            th = np.radians(heading[v])
            fwd = east * np.sin(th) + north * np.cos(th)
            right = east * np.cos(th) - north * np.sin(th)
            r_px = size - 0.5 - fwd / self.px_km
            c_px = right / self.px_km + size / 2 - 0.5
            decades = np.log10(np.maximum(self.town_pop[towns], 1e4) / 1e4)
            radius = np.minimum(0.6 + cfg.town_px_per_log10 * decades, cfg.town_max_px)
            strength = np.minimum(0.35 + 0.2 * decades, 0.95)
            reach_px = np.ceil(3 * radius)
            inside = (r_px > -reach_px) & (r_px < size + reach_px) & (c_px > -reach_px) & (c_px < size + reach_px)
            if not inside.any():
                continue
            alpha = np.zeros((size, size), np.float32)
            for rr, cc, rad, st, rp in zip(r_px[inside], c_px[inside], radius[inside], strength[inside], reach_px[inside]):
                r0, r1 = max(int(rr - rp), 0), min(int(rr + rp) + 1, size)
                c0, c1 = max(int(cc - rp), 0), min(int(cc + rp) + 1, size)
                if r0 >= r1 or c0 >= c1:
                    continue
                dr = (np.arange(r0, r1) - rr)[:, None] ** 2
                dc = (np.arange(c0, c1) - cc)[None, :] ** 2
                blob = st * np.exp(-(dr + dc) / (2 * rad**2))
                np.maximum(alpha[r0:r1, c0:c1], blob, out=alpha[r0:r1, c0:c1])
            alpha[water[v]] = 0.0
            rgb[v] += alpha[..., None] * (BUILT_UP - rgb[v])

    def _noise(self, rgb, seeds):
        noise = self.cfg.noise
        out = np.empty_like(rgb)
        for v, seed in enumerate(seeds):
            rng = np.random.default_rng(seed)
            b = 1 + rng.uniform(-noise.brightness, noise.brightness)
            c = 1 + rng.uniform(-noise.contrast, noise.contrast)
            sigma = rng.uniform(0, noise.blur_max_px)
            sensor = rng.uniform(0, noise.sensor_sigma)
            img = rgb[v]
            if sigma > 0.3:
                img = ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0), mode="nearest")
            mean = img.mean()
            img = (img - mean) * c + mean * b
            if sensor > 0:
                img = img + rng.normal(0, sensor, img.shape)
            out[v] = img
        return out


def view_seed(seed: int, location_id: str, view: int) -> int:
    """A per-view noise seed from the run's seed and the view's identity (not its place)."""
    return zlib.crc32(f"{seed}/{location_id}/{view}".encode())
