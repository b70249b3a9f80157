"""No-skill baselines for geolocation metrics (the scores themselves: ``ml.geo.scores``)."""

from __future__ import annotations

import numpy as np

from ml.geo.haversine import chord_to_km, haversine_km, to_unit_xyz
from ml.geo.scores import distance_summary


def _medoid(lat: np.ndarray, lon: np.ndarray, rng: np.random.Generator) -> int:
    """The point with the smallest total distance to the others, on a seeded sample of 2,000."""
    sample = rng.choice(len(lat), min(2000, len(lat)), replace=False)
    xyz = to_unit_xyz(lat[sample], lon[sample])
    total = chord_to_km(np.linalg.norm(xyz[:, None] - xyz[None], axis=2)).sum(1)
    return int(sample[np.argmin(total)])


def baselines(
    truth_lat, truth_lon, train_lat, train_lon, seed: int, train_country=None, truth_country=None
) -> dict[str, dict[str, float]]:
    """No-skill guesses: the train-set medoid, a random training location, and (given the
    countries) the largest training country: its locations' medoid for every guess, with the
    share of truth locations in that country as its country accuracy."""
    truth_lat, truth_lon = np.asarray(truth_lat, np.float64), np.asarray(truth_lon, np.float64)
    train_lat, train_lon = np.asarray(train_lat, np.float64), np.asarray(train_lon, np.float64)
    rng = np.random.default_rng(seed)
    m = _medoid(train_lat, train_lon, rng)
    medoid = haversine_km(truth_lat, truth_lon, train_lat[m], train_lon[m])
    r = rng.integers(0, len(train_lat), len(truth_lat))
    random = haversine_km(truth_lat, truth_lon, train_lat[r], train_lon[r])
    out = {
        "train_medoid": distance_summary(medoid) | {"lat": float(train_lat[m]), "lon": float(train_lon[m])},
        "random_train_location": distance_summary(random),
    }
    if train_country is not None:
        countries = np.asarray(train_country, dtype=object)
        known = np.array([isinstance(c, str) and c != "" for c in countries])
        if known.any():
            names, counts = np.unique(countries[known].astype(str), return_counts=True)
            largest = names[np.argmax(counts)]  # ties: the first by code
            inside = np.flatnonzero(countries == largest)
            c = inside[_medoid(train_lat[inside], train_lon[inside], np.random.default_rng(seed))]
            d = haversine_km(truth_lat, truth_lon, train_lat[c], train_lon[c])
            where = {"country": str(largest), "lat": float(train_lat[c]), "lon": float(train_lon[c])}
            out["largest_country"] = distance_summary(d) | where
            if truth_country is not None:
                truth = np.asarray(truth_country, dtype=object)
                out["largest_country"]["country_accuracy"] = (
                    float(np.mean(truth == largest) * 100) if len(truth) else 0.0
                )
    return out
