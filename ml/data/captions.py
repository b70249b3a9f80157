"""PIGEON's synthetic captions for StreetCLIP's contrastive pretraining.

Each caption is a location sentence, "A <noun> close to the town of T in the region of R in
C.", with the town part only when a town lies within ``town_max_km`` and the region part only
when the admin-1 unit is known, followed by a seeded random subset of auxiliary sentences
(climate, compass direction, month, season, driving side, land cover, elevation). A sentence
is offered only when its value is known for the row: no caption states an unknown.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from ml.settings import CaptionsConfig

# Köppen-Geiger class code -> readable climate name (unique, so a caption can be parsed back).
KOPPEN_NAMES = {
    "Af": "tropical rainforest",
    "Am": "tropical monsoon",
    "As": "tropical dry-summer savanna",
    "Aw": "tropical savanna",
    "BSh": "hot semi-arid",
    "BSk": "cold semi-arid",
    "BWh": "hot desert",
    "BWk": "cold desert",
    "Cfa": "humid subtropical",
    "Cfb": "temperate oceanic",
    "Cfc": "subpolar oceanic",
    "Csa": "hot-summer Mediterranean",
    "Csb": "warm-summer Mediterranean",
    "Csc": "cold-summer Mediterranean",
    "Cwa": "monsoon-influenced humid subtropical",
    "Cwb": "subtropical highland",
    "Cwc": "cold subtropical highland",
    "Dfa": "hot-summer humid continental",
    "Dfb": "warm-summer humid continental",
    "Dfc": "subarctic",
    "Dfd": "extremely cold subarctic",
    "Dsa": "dry-summer hot continental",
    "Dsb": "dry-summer warm continental",
    "Dsc": "dry-summer subarctic",
    "Dsd": "dry-summer extremely cold subarctic",
    "Dwa": "monsoon-influenced hot-summer continental",
    "Dwb": "monsoon-influenced warm-summer continental",
    "Dwc": "monsoon-influenced subarctic",
    "Dwd": "monsoon-influenced extremely cold subarctic",
    "EF": "ice cap",
    "ET": "tundra",
}
COMPASS = ["north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west"]
MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]
AUX_KINDS = ("climate", "direction", "month", "season", "driving_side", "landcover", "elevation")


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def compass(heading: float) -> str:
    return COMPASS[int(((heading % 360) + 22.5) // 45) % 8]


def _known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and not pd.isna(value)


def location_sentence(row: dict, cfg: CaptionsConfig) -> str:
    parts = [f"{article(cfg.photo_noun).capitalize()} {cfg.photo_noun}"]
    if _known(row.get("town")) and _known(row.get("town_distance_km")) and row["town_distance_km"] <= cfg.town_max_km:
        parts.append(f"close to the town of {row['town']}")
    if _known(row.get("admin1")):
        parts.append(f"in the region of {row['admin1']}")
    if _known(row.get("country_name")):
        parts.append(f"in {row['country_name']}")
    return " ".join(parts) + "."


def aux_sentences(row: dict, heading: float) -> dict[str, str]:
    """Every auxiliary sentence whose value is known for this row and view."""
    out = {}
    if _known(row.get("koppen")) and row["koppen"] in KOPPEN_NAMES:
        name = KOPPEN_NAMES[row["koppen"]]
        out["climate"] = f"This location has {article(name)} {name} climate."
    if _known(heading):
        out["direction"] = f"This photo is facing {compass(float(heading))}."
    if _known(row.get("month")):
        out["month"] = f"This photo was taken in {MONTHS[int(row['month']) - 1]}."
    if _known(row.get("season")):
        out["season"] = f"It was {row['season']} when this photo was taken."
    if _known(row.get("driving_side")):
        out["driving_side"] = f"In this location, people drive on the {row['driving_side']} side of the road."
    if _known(row.get("landcover_name")) and row.get("landcover") not in (0, None):
        out["landcover"] = f"The land here is mostly {row['landcover_name']}."
    if _known(row.get("elevation_m")) and row["elevation_m"] >= 0:
        out["elevation"] = f"This location is about {int(round(row['elevation_m'] / 50.0) * 50)} metres above sea level."
    return out


def view_rng(seed: int, location_id: str, view: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{location_id}/{view}".encode())])


def caption_views(views: pd.DataFrame, locations: pd.DataFrame, cfg: CaptionsConfig) -> pd.DataFrame:
    """``per_view`` captions for each row of ``views`` (location_id, view, heading)."""
    unknown = set(cfg.aux_kinds) - set(AUX_KINDS)
    if unknown:
        raise ValueError(f"captions.aux_kinds: unknown kind(s) {sorted(unknown)}; known: {list(AUX_KINDS)}")
    by_id = locations.set_index(locations["id"].astype(str)).to_dict(orient="index")
    records = []
    for loc_id, view, heading in zip(views["location_id"].astype(str), views["view"], views["heading"]):
        row = by_id[loc_id]
        first = location_sentence(row, cfg)
        offered = {k: s for k, s in aux_sentences(row, heading).items() if k in cfg.aux_kinds}
        kinds = sorted(offered)
        rng = view_rng(cfg.seed, loc_id, int(view))
        for c in range(cfg.per_view):
            k = int(rng.integers(cfg.aux_min, cfg.aux_max + 1))
            chosen = rng.permutation(len(kinds))[: min(k, len(kinds))]
            text = " ".join([first] + [offered[kinds[i]] for i in chosen])
            records.append((loc_id, int(view), c, row.get("split"), text))
    return pd.DataFrame(records, columns=["location_id", "view", "caption_index", "split", "text"])
