"""PIGEON's geolocation metrics."""

from __future__ import annotations

import numpy as np

from ml.geo.haversine import chord_to_km, haversine_km, to_unit_xyz

RADII_KM = (1, 25, 200, 750, 2500)


def geoguessr_score(d_km) -> np.ndarray:
    """GeoGuessr's points for a guess d_km away: 5000 * exp(-d / 1492.7)."""
    return 5000.0 * np.exp(-np.asarray(d_km, dtype=np.float64) / 1492.7)


def distance_summary(d_km) -> dict[str, float]:
    """% of guesses within each radius, median km, mean GeoGuessr score."""
    d = np.asarray(d_km, dtype=np.float64)
    if d.size == 0:
        return {f"within_{r}km": float("nan") for r in RADII_KM} | {
            "median_km": float("nan"),
            "geoguessr": float("nan"),
        }
    out = {f"within_{r}km": float(np.mean(d <= r) * 100.0) for r in RADII_KM}
    out["median_km"] = float(np.median(d))
    out["geoguessr"] = float(geoguessr_score(d).mean())
    return out


def baselines(truth_lat, truth_lon, train_lat, train_lon, seed: int) -> dict[str, dict[str, float]]:
    """No-skill guesses: the train-set medoid (the training location with the smallest total
    distance to the others, on a seeded sample of 2,000) and a random training location."""
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(train_lat), min(2000, len(train_lat)), replace=False)
    xyz = to_unit_xyz(train_lat[sample], train_lon[sample])
    total = chord_to_km(np.linalg.norm(xyz[:, None] - xyz[None], axis=2)).sum(1)
    m = sample[np.argmin(total)]
    medoid = haversine_km(truth_lat, truth_lon, train_lat[m], train_lon[m])
    r = rng.integers(0, len(train_lat), len(truth_lat))
    random = haversine_km(truth_lat, truth_lon, train_lat[r], train_lon[r])
    return {
        "train_medoid": distance_summary(medoid) | {"lat": float(train_lat[m]), "lon": float(train_lon[m])},
        "random_train_location": distance_summary(random),
    }
