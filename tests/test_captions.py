"""Captions: a parser re-derives every stated fact from the text and checks it against the row."""

import math
import re

import pandas as pd
import pytest

from ml.config import load_config
from ml.data.captions import KOPPEN_NAMES, MONTHS, caption_views
from ml.paths import Paths
from ml.settings import CaptionsConfig
from ml.store import read_table

NAME_TO_KOPPEN = {v: k for k, v in KOPPEN_NAMES.items()}
HEADING_OF = {"north": 0, "north-east": 45, "east": 90, "south-east": 135, "south": 180, "south-west": 225}
HEADING_OF |= {"west": 270, "north-west": 315}

LOCATION = re.compile(
    r"^An? (?P<noun>.+?)(?: close to the town of (?P<town>.+?))?(?: in the region of (?P<region>.+?))?"
    r"(?: in (?P<country>.+?))?\.(?= This | It was | In this location| The land|$) ?"
)
SENTENCES = {
    "climate": re.compile(r"This location has an? (.+?) climate\."),
    "direction": re.compile(r"This photo is facing ([a-z-]+)\."),
    "month": re.compile(r"This photo was taken in ([A-Z][a-z]+)\."),
    "season": re.compile(r"It was ([a-z]+) when this photo was taken\."),
    "driving_side": re.compile(r"In this location, people drive on the (left|right) side of the road\."),
    "landcover": re.compile(r"The land here is mostly (.+?)\."),
    "elevation": re.compile(r"This location is about (\d+) metres above sea level\."),
}


def parse(text: str) -> dict:
    """Facts stated by a caption, from its text alone."""
    m = LOCATION.match(text)
    assert m, text
    facts = {k: v for k, v in m.groupdict().items() if v is not None}
    rest = text[m.end() :]
    for kind, pattern in SENTENCES.items():
        found = pattern.findall(rest)
        assert len(found) <= 1, text
        if found:
            facts[kind] = found[0]
            rest = pattern.sub("", rest)
    assert rest.strip() == "", f"unparsed text {rest!r} in {text!r}"
    return facts


def known(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and not pd.isna(v)


def check(facts: dict, row: dict, heading: float, cfg: CaptionsConfig) -> None:
    assert facts["noun"] == cfg.photo_noun
    assert facts.get("country") == row["country_name"]
    if "region" in facts:
        assert facts["region"] == row["admin1"]
    else:
        assert not known(row["admin1"])
    if "town" in facts:
        assert facts["town"] == row["town"] and row["town_distance_km"] <= cfg.town_max_km
    else:
        assert row["town_distance_km"] > cfg.town_max_km
    if "climate" in facts:
        assert NAME_TO_KOPPEN[facts["climate"]] == row["koppen"]
    if "direction" in facts:
        assert (
            known(heading)
            and min(
                abs(HEADING_OF[facts["direction"]] - heading % 360),
                360 - abs(HEADING_OF[facts["direction"]] - heading % 360),
            )
            <= 22.5
        )  # noqa: E501
    if "month" in facts:
        assert known(row["month"]) and MONTHS.index(facts["month"]) + 1 == row["month"]
    if "season" in facts:
        assert facts["season"] == row["season"]
    if "driving_side" in facts:
        assert facts["driving_side"] == row["driving_side"]
    if "landcover" in facts:
        assert facts["landcover"] == row["landcover_name"]
    if "elevation" in facts:
        assert abs(int(facts["elevation"]) - row["elevation_m"]) <= 25


CFG = CaptionsConfig(
    per_view=4,
    photo_noun="Street View photo",
    town_max_km=50,
    aux_min=1,
    aux_max=7,
    aux_kinds=["climate", "direction", "month", "season", "driving_side", "landcover", "elevation"],
    seed=0,
)


def rows():
    base = {"split": "train", "landcover": 13, "landcover_name": "urban and built-up land", "elevation_m": 35.0}
    return pd.DataFrame(
        [
            base
            | {
                "id": "paris",
                "country_name": "France",
                "admin1": "Paris",
                "town": "Paris",
                "town_distance_km": 1.0,
                "koppen": "Cfb",
                "month": 7,
                "season": "summer",
                "driving_side": "right",
            },
            base
            | {
                "id": "outback",
                "country_name": "Australia",
                "admin1": None,
                "town": "Alice Springs",
                "town_distance_km": 300.0,
                "koppen": "BWh",
                "month": None,
                "season": None,
                "driving_side": "left",
                "landcover": 0,
                "landcover_name": "water",
                "elevation_m": -3.0,
            },
            base
            | {
                "id": "hawaii",
                "country_name": "United States of America",
                "admin1": "Hawaii",
                "town": "Hilo",
                "town_distance_km": 20.0,
                "koppen": None,
                "month": 1,
                "season": "winter",
                "driving_side": "right",
            },
        ]
    )


def test_every_fact_matches_its_row_and_nothing_unknown_is_stated():
    locations = rows()
    views = pd.DataFrame(
        {
            "location_id": ["paris", "paris", "outback", "hawaii"],
            "view": [0, 1, 0, 0],
            "heading": [0.0, 90.0, math.nan, 225.0],
        }
    )
    table = caption_views(views, locations, CFG)
    assert len(table) == CFG.per_view * len(views)
    by_id = locations.set_index("id").to_dict(orient="index")
    headings = {(r.location_id, r.view): r.heading for r in views.itertuples()}
    seen = set()
    for r in table.itertuples():
        facts = parse(r.text)
        check(facts, by_id[r.location_id], headings[(r.location_id, r.view)], CFG)
        seen |= set(facts)
    outback = " ".join(table[table.location_id == "outback"]["text"])
    assert "region" not in outback and "town of" not in outback  # unknown region, far town
    assert (
        "facing" not in outback
        and "taken in" not in outback
        and "metres" not in outback
        and "mostly water" not in outback
    )  # noqa: E501
    assert "climate" not in " ".join(table[table.location_id == "hawaii"]["text"])
    assert {"climate", "direction", "month", "season", "driving_side", "landcover", "elevation", "town"} <= seen


def test_same_seed_same_captions():
    views = pd.DataFrame({"location_id": ["paris"] * 2, "view": [0, 1], "heading": [0.0, 90.0]})
    a = caption_views(views, rows(), CFG)
    assert a.equals(caption_views(views, rows(), CFG))
    other = CaptionsConfig(**{**CFG.__dict__, "seed": 1})
    assert not a["text"].equals(caption_views(views, rows(), other)["text"])


def test_unknown_aux_kind_is_named():
    bad = CaptionsConfig(**{**CFG.__dict__, "aux_kinds": ["climate", "weather"]})
    with pytest.raises(ValueError, match="weather"):
        caption_views(pd.DataFrame({"location_id": [], "view": [], "heading": []}), rows(), bad)


def test_captions_smoke(smoke_chain):
    root, _ = smoke_chain
    paths = Paths(root)
    cfg = load_config(CaptionsConfig, paths.params)
    table = read_table(paths.asset_db("captions"), "captions")
    views = read_table(paths.asset_db("location_images"), "images")
    locations = read_table(paths.asset_db("enriched_locations"), "locations").set_index("id").to_dict(orient="index")
    assert (table.groupby(["location_id", "view"]).size() == cfg.per_view).all()
    assert len(table) == cfg.per_view * len(views)
    headings = {(r.location_id, r.view): r.heading for r in views.itertuples()}
    for r in table.itertuples():
        check(parse(r.text), locations[r.location_id], headings[(r.location_id, r.view)], cfg)
