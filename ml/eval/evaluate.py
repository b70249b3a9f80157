"""Evaluating a bundle on a set of located images: PIGEON's metrics, intervals, baselines.

Metrics per set: % of guesses within 1 / 25 / 200 / 750 / 2500 km, median km, mean GeoGuessr
score (5000 exp(-d / 1492.7), unrounded), country and admin-1 accuracy (the guess named by the
same Natural Earth rule as the truth), geocell top-1 / top-5; seeded bootstrap 95% intervals.
The holdout's bootstrap resamples whole blocks (the split's ``block_km`` grid; the report stage
reads it from the bundle's params): its locations were held out block by block and a block's
errors come together (one region the model confuses), so resampling locations one by one would
give intervals far too narrow. A user set's bootstrap resamples its locations. Three no-skill
baselines on the same set: always the train-set medoid, a random training location, and the
largest training country's medoid. Accuracy is also stratified by the distance from each evaluated location to its
nearest training location, so a reader sees how much comes from nearby training data. CLIP
models named in params are also scored with no head, by hierarchical zero-shot prompts
(ml/eval/zeroshot.py), each as its own row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ml.data.images import ImageRejected, load_image, view_table
from ml.data.sources import IMAGE_COLUMNS, image_paths, read_table_file
from ml.data.split import block_ids
from ml.eval.metrics import baselines, set_metrics
from ml.geo.haversine import chord_to_km, haversine_km, to_unit_xyz
from ml.geo.scores import distance_summary
from ml.settings import GUESSES, ReportConfig

STRATA_KM = (25, 150, 500)


class SwappedColumnsError(ValueError):
    pass


def read_eval_manifest(path: Path, swap: bool) -> pd.DataFrame:
    """lat, lon, image paths (absolute) and an id per row; detects swapped LAT/LON headers."""
    table = read_table_file(path)
    lat = pd.to_numeric(table["lat"], errors="coerce")
    lon = pd.to_numeric(table["lon"], errors="coerce")
    if swap:
        lat, lon = lon, lat
    elif (lat.abs() > 90).any():
        raise SwappedColumnsError(
            f"{path}: the 'lat' column has values beyond ±90 (e.g. {lat[lat.abs() > 90].iloc[0]}): its LAT and LON "
            "headers look swapped, as in the public IM2GPS / IM2GPS3k metadata. Fix the file, or set swap_lat_lon: "
            "true for this set in params.yaml"
        )
    if not set(IMAGE_COLUMNS) & set(table.columns):
        raise ValueError(f"{path}: an evaluation manifest needs an image_path (or image_paths) column")
    paths = image_paths(table, path.parent)
    ids = table["id"].astype(str) if "id" in table.columns else pd.Series([f"row-{i}" for i in range(len(table))])
    return pd.DataFrame({"id": ids, "lat": lat.to_numpy(), "lon": lon.to_numpy(), "paths": paths})


def nearest_train_km(lat, lon, train_lat, train_lon) -> np.ndarray:
    d, _ = cKDTree(to_unit_xyz(train_lat, train_lon)).query(to_unit_xyz(lat, lon))
    return chord_to_km(d)


def strata(frame: pd.DataFrame) -> pd.DataFrame:
    edges = (0, *STRATA_KM, np.inf)
    labels = [f"< {STRATA_KM[0]} km"] + [f"{a}-{b} km" for a, b in zip(STRATA_KM[:-1], STRATA_KM[1:])]
    labels += [f"> {STRATA_KM[-1]} km"]
    bins = pd.cut(frame["nearest_train_km"], edges, labels=labels, right=False)
    rows = []
    for label in labels:
        part = frame[bins == label]
        s = distance_summary(part["distance_km"].to_numpy())
        rows.append({"nearest_training_location": label, "n": len(part)} | {k: round(v, 2) for k, v in s.items()})
    return pd.DataFrame(rows)


@dataclass
class SetResult:
    name: str
    frame: pd.DataFrame  # per location: truth, guess, distance, correctness, nearest training km
    metrics: dict
    baselines: dict
    strata: pd.DataFrame
    by_continent: pd.DataFrame
    failed: int
    zero_shot: dict = field(default_factory=dict)  # model name -> metrics of its zero-shot guesses
    guesses: dict = field(default_factory=dict)  # other refine.guess modes -> metrics of their guesses
    bootstrap_unit: str = "locations"  # what the intervals' bootstrap resamples (the report says it)


def evaluate_groups(
    geo,
    name: str,
    truth: pd.DataFrame,
    groups: list[list[np.ndarray]],
    train_lat: np.ndarray,
    train_lon: np.ndarray,
    cell_lookup,
    cfg: ReportConfig,
    failed: int = 0,
    zero_shots: dict | None = None,
    train_country=None,
    clusters: np.ndarray | None = None,
    bootstrap_unit: str = "locations",
) -> SetResult:
    """Evaluate predictions for ``groups`` (the views of each truth row); ``train_country``
    (the training locations' countries) adds the largest-country baseline; ``clusters`` (a
    label per truth row, e.g. its split block) makes the bootstrap resample those."""
    others = tuple(g for g in GUESSES if g != geo.refine.guess)
    results = []
    for i in range(0, len(groups), cfg.batch_size):
        results += geo.predict_arrays(groups[i : i + cfg.batch_size], also=others)
    lat, lon = truth["lat"].to_numpy(np.float64), truth["lon"].to_numpy(np.float64)
    guess_lat = np.array([r["lat"] for r in results])
    guess_lon = np.array([r["lon"] for r in results])
    frame = truth[["id", "lat", "lon"]].copy()
    frame["guess_lat"], frame["guess_lon"] = guess_lat, guess_lon
    frame["distance_km"] = haversine_km(lat, lon, guess_lat, guess_lon)
    places = truth if "country" in truth else geo.name_places(lat, lon)
    frame["country"] = places["country"].to_numpy()
    frame["continent"] = places["continent"].to_numpy()
    frame["country_correct"] = frame["country"].to_numpy() == np.array([r["country"] for r in results], dtype=object)
    frame["admin1_correct"] = frame["country_correct"] & (
        places["admin1"].to_numpy() == np.array([r["admin1"] for r in results], dtype=object)
    )
    true_cell = cell_lookup(lat, lon)
    tops = [[c["cell_id"] for c in r["top_cells"]] for r in results]
    frame["cell_top1"] = [t[0] == c for t, c in zip(tops, true_cell)]
    frame["cell_top5"] = [c in t[:5] for t, c in zip(tops, true_cell)]
    frame["nearest_train_km"] = nearest_train_km(lat, lon, train_lat, train_lon)
    by_continent = (
        frame.groupby("continent", dropna=False)
        .agg(n=("id", "size"), country_accuracy=("country_correct", "mean"), median_km=("distance_km", "median"))
        .reset_index()
    )
    by_continent["country_accuracy"] *= 100

    def row(guessed: pd.DataFrame) -> dict:
        """The metrics of other guesses (lat, lon, country, admin1) of the same locations."""
        at = guessed["lat"].to_numpy(float), guessed["lon"].to_numpy(float)
        gf = pd.DataFrame({"distance_km": haversine_km(lat, lon, *at), "country": frame["country"].to_numpy()})
        gf["country_correct"] = frame["country"].to_numpy() == guessed["country"].to_numpy(dtype=object)
        gf["admin1_correct"] = gf["country_correct"].to_numpy() & (
            places["admin1"].to_numpy() == guessed["admin1"].to_numpy(dtype=object)
        )
        return set_metrics(gf, cfg.bootstrap, cfg.seed, clusters)

    zero_shot = {}
    for zname, classifier in (zero_shots or {}).items():
        parts = [classifier.predict(groups[i : i + cfg.batch_size]) for i in range(0, len(groups), cfg.batch_size)]
        zero_shot[zname] = row(pd.concat(parts, ignore_index=True) if parts else classifier.predict([]))
    guesses = {}
    for mode in others:
        at = np.array([r["other_guesses"][mode] for r in results], np.float64).reshape(-1, 2)
        named = geo.name_places(at[:, 0], at[:, 1])
        guesses[mode] = row(pd.DataFrame({"lat": at[:, 0], "lon": at[:, 1]}).join(named[["country", "admin1"]]))
    return SetResult(
        name=name,
        frame=frame,
        metrics=set_metrics(frame, cfg.bootstrap, cfg.seed, clusters),
        baselines=baselines(lat, lon, train_lat, train_lon, cfg.seed, train_country, frame["country"].to_numpy()),
        strata=strata(frame),
        by_continent=by_continent,
        failed=failed,
        zero_shot=zero_shot,
        guesses=guesses,
        bootstrap_unit=bootstrap_unit,
    )


def evaluate_holdout(
    geo,
    locations: pd.DataFrame,
    images: pd.DataFrame,
    store,
    train,
    cell_lookup,
    cfg,
    zero_shots=None,
    block_km: float | None = None,
    split: str = "test",
    name: str = "holdout",
) -> SetResult:
    """A held-out split of enriched_locations (the test split: ``holdout``; val: ``val``) with
    its stored views; ``block_km``: the split's blocks, which the bootstrap resamples whole
    (None: it resamples locations)."""
    test = locations[locations["split"] == split]
    test = test[test["id"].astype(str).isin(set(images["location_id"].astype(str)))].reset_index(drop=True)
    if cfg.max_locations:
        test = test.head(cfg.max_locations)
    table = view_table(test["id"], images, geo.model.spec.views)
    groups = [table.read(store, k) for k in range(len(test))]
    tl, tn = train["lat"].to_numpy(), train["lon"].to_numpy()
    blocks, unit = None, "locations"
    if block_km:
        blocks = block_ids(test["lat"].to_numpy(np.float64), test["lon"].to_numpy(np.float64), block_km)
        unit = f"its {len(np.unique(blocks))} blocks of {block_km:g} km whole"
    return evaluate_groups(
        geo,
        name,
        test,
        groups,
        tl,
        tn,
        cell_lookup,
        cfg,
        zero_shots=zero_shots,
        train_country=_countries(train),
        clusters=blocks,
        bootstrap_unit=unit,
    )


def evaluate_manifest(geo, name: str, path: Path, swap: bool, train, cell_lookup, cfg, zero_shots=None) -> SetResult:
    """A user set: images on disk with their coordinates; unreadable images are counted."""
    truth = read_eval_manifest(path, swap)
    groups, keep, failed = [], [], 0
    for i, paths in enumerate(truth["paths"]):
        try:
            groups.append([load_image(p, geo.max_pixels) for p in paths])
            keep.append(i)
        except ImageRejected:
            failed += 1
    truth = truth.iloc[keep].reset_index(drop=True)
    tl, tn = train["lat"].to_numpy(), train["lon"].to_numpy()
    return evaluate_groups(geo, name, truth, groups, tl, tn, cell_lookup, cfg, failed, zero_shots, _countries(train))


def _countries(train: pd.DataFrame):
    return train["country"].to_numpy(dtype=object) if "country" in train else None
