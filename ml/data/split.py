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


def spatial_split(lat: np.ndarray, lon: np.ndarray, cfg: SplitConfig, wave: np.ndarray | None = None) -> np.ndarray:
    """Each location's split. ``wave``: 0 for the base, 1, 2, ... for the batches in their
    order (None: all base)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    wave = np.zeros(len(lat), dtype=np.int64) if wave is None else np.asarray(wave, dtype=np.int64)
    split = np.full(len(lat), "train", dtype=object)
    base = wave == 0
    split[base] = _deal(lat[base], lon[base], cfg)
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


def _deal(lat: np.ndarray, lon: np.ndarray, cfg: SplitConfig) -> np.ndarray:
    """The base's split: whole blocks dealt in a seeded order until val and test hold their shares."""
    n = len(lat)
    split = np.full(n, "train", dtype=object)
    if n == 0:
        return split
    blocks, inverse, counts = np.unique(block_ids(lat, lon, cfg.block_km), return_inverse=True, return_counts=True)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(blocks))
    cap = cfg.held_per_block if cfg.held_per_block > 0 else n
    assigned = np.full(len(blocks), "train", dtype=object)
    targets = [("val", cfg.val_share * n), ("test", cfg.test_share * n)]
    total, t = 0.0, 0
    cum = {name: 0 for name, _ in targets}
    for b in order:
        while t < len(targets) and cum[targets[t][0]] >= targets[t][1]:
            t += 1
        if t == len(targets):
            break
        name = targets[t][0]
        assigned[b] = name
        cum[name] += min(counts[b], cap)
        total += counts[b]
    split = assigned[inverse]
    if cfg.held_per_block > 0:  # a seeded sample of each big held-out block stays held out
        for b in np.flatnonzero((assigned != "train") & (counts > cap)):
            members = np.flatnonzero(inverse == b)
            split[rng.choice(members, size=len(members) - cap, replace=False)] = "buffer"
    train = split == "train"
    held = np.flatnonzero(~train)
    if held.size and train.any() and cfg.min_distance_km > 0:
        tree = cKDTree(to_unit_xyz(lat[train], lon[train]))
        near = tree.query(to_unit_xyz(lat[held], lon[held]), k=1, distance_upper_bound=float(km_to_chord(cfg.min_distance_km)))[0]
        split[held[np.isfinite(near)]] = "buffer"
    return split


def check_split(lat, lon, split, min_distance_km: float) -> float:
    """The smallest distance from a val/test location to a train location, in km."""
    train = split == "train"
    held = np.isin(split, ["val", "test"])
    if not train.any() or not held.any():
        return float("inf")
    d, _ = cKDTree(to_unit_xyz(lat[train], lon[train])).query(to_unit_xyz(lat[held], lon[held]), k=1)
    return float(chord_to_km(d.min()))
