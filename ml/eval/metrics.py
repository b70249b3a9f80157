"""No-skill baselines for geolocation metrics, and the metrics of an evaluated set with their
bootstrap intervals (the scores themselves: ``ml.geo.scores``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.geo.haversine import chord_to_km, haversine_km, to_unit_xyz
from ml.geo.scores import RADII_KM, distance_summary, geoguessr_score


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


def members_of(clusters: np.ndarray) -> list[np.ndarray]:
    """The row indices of each cluster (a label per row), in order of first label."""
    _, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(np.bincount(inverse))[:-1])


def bootstrap_interval(
    values: np.ndarray, stat, n: int, seed: int, clusters: np.ndarray | None = None
) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of ``stat`` over ``n`` seeded resamples: of the rows, or,
    with ``clusters`` (a label per row), of the clusters (as many drawn with replacement as
    there are, each with all its rows)."""
    if len(values) == 0 or n <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if clusters is None:
        stats = [stat(values[rng.integers(0, len(values), len(values))]) for _ in range(n)]
    else:
        members = members_of(clusters)
        draws = (rng.integers(0, len(members), len(members)) for _ in range(n))
        stats = [stat(values[np.concatenate([members[c] for c in drawn])]) for drawn in draws]
    stats = np.asarray(stats, dtype=float)
    if np.isnan(stats).all():  # e.g. a macro average over no country with enough locations
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(stats, [2.5, 97.5])  # resamples where the statistic is undefined left out
    return float(lo), float(hi)


MACRO_MIN = 5  # a country counts in the macro-averaged accuracy with at least this many locations


def macro_accuracy(country: pd.Series, correct: np.ndarray):
    """A statistic of row indices: the mean over truth countries with ``MACRO_MIN`` locations or
    more (among those rows) of each country's accuracy (%), so that a set dominated by one
    country cannot flatter the model. Unknown countries (no polygon) are left out."""
    codes, _ = pd.factorize(pd.Series(country).fillna("").astype(str).replace("", np.nan))
    codes = np.asarray(codes)

    def stat(rows: np.ndarray) -> float:
        c = codes[rows]
        known = c >= 0
        if not known.any():
            return float("nan")
        n = np.bincount(c[known])
        hits = np.bincount(c[known], weights=correct[rows][known], minlength=len(n))
        enough = n >= MACRO_MIN
        return float(np.mean(hits[enough] / n[enough]) * 100) if enough.any() else float("nan")

    return stat


def largest_share(country) -> tuple[str, float]:
    """The most common truth country of a set and its share of the set's locations (%)."""
    known = pd.Series(country).dropna().astype(str)
    known = known[known != ""]
    if known.empty:
        return "", 0.0
    counts = known.value_counts()
    return str(counts.index[0]), float(counts.iloc[0] / len(pd.Series(country)) * 100)


def set_metrics(
    frame: pd.DataFrame, n_boot: int, seed: int, clusters: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """Each metric with its bootstrap 95% interval: {metric: {value, low, high}}; ``clusters``
    (a label per row, e.g. the split's block): resample those, not rows."""
    d = frame["distance_km"].to_numpy()
    columns = {f"within_{r}km": (d, lambda x, r=r: float(np.mean(x <= r) * 100)) for r in RADII_KM}
    columns["median_km"] = (d, lambda x: float(np.median(x)))
    columns["geoguessr"] = (d, lambda x: float(geoguessr_score(x).mean()))
    for name in ("country_correct", "admin1_correct", "cell_top1", "cell_top5"):
        if name in frame:
            v = frame[name].to_numpy(dtype=float)
            columns[name.replace("_correct", "_accuracy")] = (v, lambda x: float(np.mean(x) * 100))
        if name == "country_correct" and name in frame and "country" in frame:
            columns["country_macro_accuracy"] = (np.arange(len(frame)), macro_accuracy(frame["country"], v))
    out = {}
    for i, (name, (values, stat)) in enumerate(columns.items()):
        lo, hi = bootstrap_interval(values, stat, n_boot, seed + i, clusters)
        out[name] = {"value": stat(values) if len(values) else float("nan"), "low": lo, "high": hi}
    return out
