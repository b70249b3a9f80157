"""The train / val / test / buffer split, seeded and spatially grouped by blocks.

Locations are grouped into blocks of a lat/lon grid whose cells are about ``block_km`` wide
(longitude cells widen towards the poles to keep that width in km). Whole blocks are dealt,
in a seeded random order, to val and test until each holds its share of locations; the rest
is train. A val or test location within ``min_distance_km`` of any train location (a
neighbouring block) goes to ``buffer``: kept and counted, used for neither training nor
evaluation. With ``held_per_block`` > 0 a held-out block gives val or test at most that many
of its locations (a seeded sample; the rest go to ``buffer`` too), so that one dense block
(London's held 57% of the embedded default's val) cannot be most of a split and make its
figures, and their bootstrap intervals, a measure of one place. Blocks, not transitive chains of nearby points, which at large distances swallow
whole continents.

Landed batches (``ml.data.corpus``) are dealt after the base, one batch at a time in their
order, without moving any location already dealt: a new location in a block that holds earlier
locations takes that block's split (a held-out block full to ``held_per_block``, or one whose
locations are all buffer, gives buffer); a new block is dealt by a seeded draw of its own id at
the configured shares. Then a new val / test location within ``min_distance_km`` of any train
location, and a new train location within it of any held-out one, go to buffer: what lands is
never trained on beside the holdout, nor held out beside training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ml.geo.haversine import KM_PER_DEG_LAT, chord_to_km, km_to_chord, to_unit_xyz
from ml.settings import SplitConfig

SPLITS = ("train", "val", "test", "buffer")


def block_ids(lat: np.ndarray, lon: np.ndarray, block_km: float) -> np.ndarray:
    step = block_km / KM_PER_DEG_LAT
    n_bands = max(1, int(np.ceil(180.0 / step)))
    band = np.clip(np.floor((lat + 90.0) / step), 0, n_bands - 1).astype(np.int64)
    centre = -90.0 + (band + 0.5) * step
    n_cols = np.maximum(1, np.floor(360.0 * np.cos(np.radians(centre)) / step)).astype(np.int64)
    col = np.minimum(np.floor((lon + 180.0) / 360.0 * n_cols), n_cols - 1).astype(np.int64)
    return band * 1_000_000 + col


def spatial_split(
    lat: np.ndarray,
    lon: np.ndarray,
    cfg: SplitConfig,
    wave: np.ndarray | None = None,
    strata: np.ndarray | None = None,
) -> np.ndarray:
    """Each location's split. ``wave``: 0 for the base, 1, 2, ... for the batches in their
    order (None: all base). ``strata``: each location's region label (``continent|country``),
    by which ``cfg.stratify`` deals held-out blocks to val and test alike (None: not stratified)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    wave = np.zeros(len(lat), dtype=np.int64) if wave is None else np.asarray(wave, dtype=np.int64)
    split = np.full(len(lat), "train", dtype=object)
    base = wave == 0
    split[base] = _deal(lat[base], lon[base], cfg, None if strata is None else np.asarray(strata, dtype=object)[base])
    for w in np.unique(wave[wave > 0]):
        _deal_batch(lat, lon, split, np.flatnonzero(wave == w), np.flatnonzero(wave < w), cfg)
    return split


def _deal_batch(lat, lon, split, new: np.ndarray, earlier: np.ndarray, cfg: SplitConfig) -> None:
    """Deal one batch's locations (``new``) beside those dealt before (``earlier``), in place."""
    blocks = block_ids(lat, lon, cfg.block_km)
    dealt: dict[int, str] = {}  # block -> its split (a held block of only buffer: buffer)
    held: dict[int, int] = {}  # block -> held-out locations in it
    for b, s in zip(blocks[earlier].tolist(), split[earlier]):
        if s == "buffer":
            dealt.setdefault(b, s)
        else:
            dealt[b] = s  # a block's locations that are not buffer all hold its split
        held[b] = held.get(b, 0) + (s in ("val", "test"))
    cap = cfg.held_per_block
    for i in new:
        b = int(blocks[i])
        if b not in dealt:
            u = np.random.default_rng([cfg.seed, b]).random()
            dealt[b] = "val" if u < cfg.val_share else "test" if u < cfg.val_share + cfg.test_share else "train"
        s = dealt[b]
        if s in ("val", "test"):
            if cap > 0 and held.get(b, 0) >= cap:
                s = "buffer"
            else:
                held[b] = held.get(b, 0) + 1
        split[i] = s
    if cfg.min_distance_km <= 0:
        return
    radius = float(km_to_chord(cfg.min_distance_km))
    everyone = np.concatenate([earlier, new])

    def near(points: np.ndarray, of: np.ndarray) -> np.ndarray:
        if not len(points) or not len(of):
            return np.zeros(len(points), dtype=bool)
        tree = cKDTree(to_unit_xyz(lat[of], lon[of]))
        return np.isfinite(tree.query(to_unit_xyz(lat[points], lon[points]), k=1, distance_upper_bound=radius)[0])

    new_held = new[np.isin(split[new], ["val", "test"])]
    split[new_held[near(new_held, everyone[split[everyone] == "train"])]] = "buffer"
    new_train = new[split[new] == "train"]
    split[new_train[near(new_train, everyone[np.isin(split[everyone], ["val", "test"])])]] = "buffer"


def _deal(lat: np.ndarray, lon: np.ndarray, cfg: SplitConfig, strata: np.ndarray | None = None) -> np.ndarray:
    """The base's split: whole blocks taken in a seeded order until val and test hold their
    shares. Without ``cfg.stratify`` the first go to val and the next to test; with it (and
    ``strata``) they are held out first, capped and buffered, and then dealt to val and test by
    region on the locations they keep (``_by_region``)."""
    n = len(lat)
    split = np.full(n, "train", dtype=object)
    if n == 0:
        return split
    blocks, inverse, counts = np.unique(block_ids(lat, lon, cfg.block_km), return_inverse=True, return_counts=True)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(blocks))
    cap = cfg.held_per_block if cfg.held_per_block > 0 else n
    held = np.minimum(counts, cap)
    stratified = cfg.stratify and strata is not None
    assigned = np.full(len(blocks), "train", dtype=object)
    targets = [("held", (cfg.val_share + cfg.test_share) * n)] if stratified else []
    targets = targets or [("val", cfg.val_share * n), ("test", cfg.test_share * n)]
    t, cum = 0, {name: 0 for name, _ in targets}
    for b in order:
        while t < len(targets) and cum[targets[t][0]] >= targets[t][1]:
            t += 1
        if t == len(targets):
            break
        assigned[b] = targets[t][0]
        cum[targets[t][0]] += held[b]
    split = assigned[inverse]
    if cfg.held_per_block > 0:  # a seeded sample of each big held-out block stays held out
        for b in np.flatnonzero((assigned != "train") & (counts > cap)):
            members = np.flatnonzero(inverse == b)
            split[rng.choice(members, size=len(members) - cap, replace=False)] = "buffer"
    train = split == "train"
    out = np.flatnonzero(~train)
    if out.size and train.any() and cfg.min_distance_km > 0:
        tree = cKDTree(to_unit_xyz(lat[train], lon[train]))
        near = tree.query(to_unit_xyz(lat[out], lon[out]), k=1, distance_upper_bound=float(km_to_chord(cfg.min_distance_km)))[0]
        split[out[np.isfinite(near)]] = "buffer"
    if stratified:
        kept = split == "held"
        dealt = _by_region(inverse[kept], np.asarray(strata, dtype=object)[kept], cfg, rng)
        split[kept] = dealt
    return split


def _by_region(block: np.ndarray, strata: np.ndarray, cfg: SplitConfig, rng) -> np.ndarray:
    """Deal held-out locations to val and test block by block, along one sequence ordered by
    region (continent, then country, largest block first): each block goes to whichever split
    keeps the running val : test counts closest to the shares', so every stretch of the
    sequence (a continent, a country) is shared between val and test at those shares, within
    about one block's locations: val and test get the same make-up."""
    frame = pd.DataFrame({"block": block, "label": pd.Series(strata).fillna("?|?").astype(str).to_numpy()})
    sizes = frame.groupby("block").size()
    labels = frame.groupby(["block", "label"]).size().reset_index(name="n")
    labels = labels.sort_values(["block", "n", "label"], ascending=[True, False, True]).drop_duplicates("block")
    label = dict(zip(labels["block"], labels["label"]))
    tie = dict(zip(sizes.index, rng.random(len(sizes))))
    sequence = sorted(sizes.index, key=lambda b: (*label[b].split("|", 1), -sizes[b], tie[b]))
    ratio = cfg.val_share / (cfg.val_share + cfg.test_share)
    dealt, v, t = {}, 0, 0
    for b in sequence:
        n = sizes[b]
        as_val, as_test = abs(v + n - ratio * (v + t + n)), abs(v - ratio * (v + t + n))
        to_val = as_val < as_test or (as_val == as_test and tie[b] < ratio)
        dealt[b] = "val" if to_val else "test"
        v, t = (v + n, t) if to_val else (v, t + n)
    return np.array([dealt[b] for b in block], dtype=object)


def split_makeup(split, continent, country, top: int = 10) -> dict:
    """The make-up of val and of test: the share (%) of each in every continent and in the
    ``top`` largest training countries, and the largest gaps between the two (points)."""
    frame = pd.DataFrame({"split": split, "continent": continent, "country": country}).fillna("?")
    largest = frame.loc[frame["split"] == "train", "country"].value_counts().index[:top].tolist()
    out: dict = {"continents": {}, "countries": {}}
    for split_name in ("val", "test"):
        part = frame[frame["split"] == split_name]
        size = max(len(part), 1)
        for c, k in part["continent"].value_counts().items():
            out["continents"].setdefault(c, {"val": 0.0, "test": 0.0})[split_name] = round(100 * k / size, 2)
        for c in largest:
            out["countries"].setdefault(c, {"val": 0.0, "test": 0.0})[split_name] = round(
                100 * float((part["country"] == c).sum()) / size, 2
            )
        out[f"top{top}_{split_name}"] = round(100 * float(part["country"].isin(largest).sum()) / size, 2)

    def gap(shares: dict) -> float:
        return round(max((abs(v["val"] - v["test"]) for v in shares.values()), default=0.0), 2)

    out["largest_continent_gap"] = gap(out["continents"])
    out["largest_country_gap"] = gap(out["countries"])
    out["largest_country"] = largest[0] if largest else ""
    out["largest_country_share_gap"] = gap({k: v for k, v in out["countries"].items() if k == out["largest_country"]})
    return out


def check_split(lat, lon, split, min_distance_km: float) -> float:
    """The smallest distance from a val/test location to a train location, in km."""
    train = split == "train"
    held = np.isin(split, ["val", "test"])
    if not train.any() or not held.any():
        return float("inf")
    d, _ = cKDTree(to_unit_xyz(lat[train], lon[train])).query(to_unit_xyz(lat[held], lon[held]), k=1)
    return float(chord_to_km(d.min()))
