"""GeoNames towns: the nearest town of a point, and a population-density proxy.

No gridded population raster is available offline, so population density is estimated as a
Gaussian kernel density of the GeoNames cities15000 populations:
``density(x) = sum_j pop_j * exp(-d_j^2 / (2 h^2)) / (2 pi h^2)`` persons/km^2 over towns j
within 4 h of x, with bandwidth h in params. It sees only towns above 15,000 people, so
rural densities read near zero; it ranks places (Paris far above Lozère), it does not count
people.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ml.geo.haversine import chord_to_km, km_to_chord, to_unit_xyz


class Gazetteer:
    def __init__(self, cities: pd.DataFrame):
        self.cities = cities.reset_index(drop=True)
        self.population = self.cities["population"].to_numpy(dtype=np.float64)
        self.tree = cKDTree(to_unit_xyz(self.cities["lat"].to_numpy(), self.cities["lon"].to_numpy()))

    def nearest(self, lat, lon) -> pd.DataFrame:
        chord, idx = self.tree.query(to_unit_xyz(lat, lon), k=1)
        town = self.cities.iloc[idx]
        return pd.DataFrame(
            {
                "town": town["name"].to_numpy(dtype=object),
                "town_country": town["country_code"].to_numpy(dtype=object),
                "town_population": town["population"].to_numpy(dtype=np.int64),
                "town_distance_km": chord_to_km(chord),
            }
        )

    def population_density(self, lat, lon, bandwidth_km: float) -> np.ndarray:
        """Persons per km² (see the module docstring)."""
        points = cKDTree(to_unit_xyz(lat, lon))
        pairs = points.sparse_distance_matrix(self.tree, float(km_to_chord(4 * bandwidth_km)), output_type="ndarray")
        d_km = chord_to_km(pairs["v"])
        w = self.population[pairs["j"]] * np.exp(-(d_km**2) / (2 * bandwidth_km**2))
        density = np.bincount(pairs["i"], weights=w, minlength=len(np.atleast_1d(lat)))
        return density / (2 * np.pi * bandwidth_km**2)
