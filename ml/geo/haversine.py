"""Great-circle distances on a sphere of radius 6371 km (PIGEON's R)."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG_LAT = np.pi * EARTH_RADIUS_KM / 180.0


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Distance in km between points given in degrees; broadcasts like numpy."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def to_unit_xyz(lat, lon) -> np.ndarray:
    """Points on the unit sphere, shape (n, 3): a KD-tree over these answers radius queries."""
    lat = np.radians(np.asarray(lat, dtype=np.float64))
    lon = np.radians(np.asarray(lon, dtype=np.float64))
    c = np.cos(lat)
    return np.stack([c * np.cos(lon), c * np.sin(lon), np.sin(lat)], axis=-1)


def km_to_chord(km) -> np.ndarray:
    """Straight-line distance through the unit sphere for an arc of ``km``."""
    return 2 * np.sin(np.asarray(km, dtype=np.float64) / (2 * EARTH_RADIUS_KM))


def chord_to_km(chord) -> np.ndarray:
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord, dtype=np.float64) / 2, 0.0, 1.0))


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1 (the zero vector stays zero)."""
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def xyz_to_latlon(v: np.ndarray) -> tuple[float, float]:
    """(lat, lon) in degrees of the direction of the 3-vector ``v``."""
    c = unit(np.asarray(v, dtype=np.float64))
    return float(np.degrees(np.arcsin(np.clip(c[2], -1, 1)))), float(np.degrees(np.arctan2(c[1], c[0])))


def spherical_mean(lat, lon) -> tuple[float, float]:
    """The spherical mean of points: the direction of the sum of their unit vectors (right
    across the antimeridian, where the mean of longitudes is not)."""
    return xyz_to_latlon(to_unit_xyz(lat, lon).sum(axis=0))
