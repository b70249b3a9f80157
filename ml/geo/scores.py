"""PIGEON's distance scores of geolocation guesses: % within each radius, median km, and the
GeoGuessr score. The one home of these formulas, for training (val) and evaluation alike."""

from __future__ import annotations

import numpy as np

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
