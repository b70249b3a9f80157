"""Global lat/lon rasters (Köppen-Geiger, MODIS land cover, ETOPO5 elevation) as arrays with
vectorised nearest-cell lookup."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GridRaster:
    """A global grid. Row 0 is the northern edge when ``north_up`` (image files) or the southern
    edge otherwise (ETOPO5). ``pixel_is_area`` says whether a value covers a cell (images) or
    sits on a grid node (ETOPO5's 2161 rows span -90..90 inclusive)."""

    values: np.ndarray
    step_lat: float
    step_lon: float
    north_up: bool = True
    pixel_is_area: bool = True

    def index(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        rows, cols = self.values.shape
        from_edge = (90.0 - lat) if self.north_up else (lat + 90.0)
        if self.pixel_is_area:
            r = np.floor(from_edge / self.step_lat)
            c = np.floor((lon + 180.0) / self.step_lon)
        else:
            r = np.rint(from_edge / self.step_lat)
            c = np.rint((lon + 180.0) / self.step_lon)
        r = np.clip(r, 0, rows - 1).astype(np.intp)
        c = np.mod(c, cols if self.pixel_is_area else cols).astype(np.intp)
        return r, c

    def sample(self, lat, lon) -> np.ndarray:
        r, c = self.index(lat, lon)
        return self.values[r, c]

    def sample_valid(self, lat, lon, invalid, max_radius_px: int) -> np.ndarray:
        """Like ``sample``, but a cell whose value is in ``invalid`` takes the nearest valid cell
        within ``max_radius_px`` (a coastal point reads the land beside it, not the ocean).
        Cells with no valid neighbour keep their own value."""
        r, c = self.index(lat, lon)
        out = self.values[r, c].copy()
        todo = np.flatnonzero(np.isin(out, invalid))
        if todo.size == 0 or max_radius_px <= 0:
            return out
        rows, cols = self.values.shape
        d = np.arange(-max_radius_px, max_radius_px + 1)
        dr, dc = np.meshgrid(d, d, indexing="ij")
        order = np.argsort(dr.ravel() ** 2 + dc.ravel() ** 2, kind="stable")
        for odr, odc in zip(dr.ravel()[order][1:], dc.ravel()[order][1:]):
            if todo.size == 0:
                break
            rr = np.clip(r[todo] + odr, 0, rows - 1)
            cc = np.mod(c[todo] + odc, cols)
            v = self.values[rr, cc]
            ok = ~np.isin(v, invalid)
            out[todo[ok]] = v[ok]
            todo = todo[~ok]
        return out

    def window(self, lat: float, lon: float, half_px: int) -> np.ndarray:
        """The square of cells around (lat, lon), wrapping in longitude, clamped at the poles."""
        r, c = self.index(lat, lon)
        rows, cols = self.values.shape
        rr = np.clip(np.arange(int(r) - half_px, int(r) + half_px + 1), 0, rows - 1)
        cc = np.mod(np.arange(int(c) - half_px, int(c) + half_px + 1), cols)
        return self.values[np.ix_(rr, cc)]
