"""enriched_locations: known answers on real reference data, and the split's guarantee."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.config import load_config
from ml.data.enrich import enrich_locations, season_of
from ml.data.split import check_split, spatial_split
from ml.geo.haversine import haversine_km
from ml.geo.reference import ReferenceData
from ml.paths import Paths
from ml.settings import Admin2Config, EnrichConfig, SplitConfig
from ml.store import read_table

REPO = Path(__file__).resolve().parents[1]

PLACES = {
    "paris": (48.8566, 2.3522, "2021-07-14"),
    "lozere": (44.517, 3.50, ""),
    "london": (51.5074, -0.1278, "2020-01-10"),
    "sydney": (-33.8688, 151.2093, "2020-01-10"),
    "cairo": (30.0444, 31.2357, ""),
    "windhoek": (-22.5609, 17.0658, ""),
    "denver": (39.7392, -104.9903, ""),
    "lapaz": (-16.4990, -68.1462, ""),
    "pacific": (0.0, -150.0, ""),
    "portsmouth_pier": (50.7797, -1.0893, ""),
}


@pytest.fixture(scope="module")
def reference():
    return ReferenceData(REPO / "data" / "reference")


@pytest.fixture(scope="module")
def enriched(reference):
    raw = pd.DataFrame(
        {
            "id": list(PLACES),
            "lat": [v[0] for v in PLACES.values()],
            "lon": [v[1] for v in PLACES.values()],
            "source": "manifest",
            "image_paths": [[] for _ in PLACES],
            "heading": np.nan,
            "captured_at": pd.to_datetime([v[2] or None for v in PLACES.values()]),
            "input_row": range(len(PLACES)),
        }
    )
    cfg = EnrichConfig(
        coast_cap_km=10,
        koppen_search_px=6,
        population_bandwidth_km=10,
        admin2=Admin2Config(path="", name_field=""),
        split=SplitConfig(seed=0, val_share=0.1, test_share=0.1, min_distance_km=1, block_km=25),
    )
    return enrich_locations(raw, reference, cfg, REPO)


def row(enriched, name):
    return enriched.locations.set_index("id").loc[name]


def test_paris(enriched):
    paris = row(enriched, "paris")
    assert (paris.country, paris.continent, paris.admin1, paris.admin1_region) == (
        "FR",
        "Europe",
        "Paris",
        "Île-de-France",
    )
    assert paris.koppen == "Cfb"
    assert paris.landcover_name == "urban and built-up land"
    assert paris.driving_side == "right"
    assert paris.population_density > 50 * row(enriched, "lozere").population_density
    assert (paris.month, paris.season, paris.hemisphere) == (7, "summer", "N")
    assert paris.town == "Paris" and paris.town_distance_km < 5


def test_known_countries_climates_and_traffic(enriched):
    assert (row(enriched, "london").country, row(enriched, "london").driving_side) == ("GB", "left")
    sydney = row(enriched, "sydney")
    assert (sydney.country, sydney.koppen, sydney.season) == ("AU", "Cfa", "summer")  # January, south
    assert (row(enriched, "cairo").country, row(enriched, "cairo").koppen) == ("EG", "BWh")
    windhoek = row(enriched, "windhoek")
    assert windhoek.country == "NA" and windhoek.country_name == "Namibia" and windhoek.driving_side == "left"


def test_elevations(enriched):
    assert 1400 <= row(enriched, "denver").elevation_m <= 1800
    assert 3600 <= row(enriched, "lapaz").elevation_m <= 4300


def test_off_coast_and_not_on_land(enriched):
    pier = row(enriched, "portsmouth_pier")
    assert pier.country == "GB" and 0 < pier.land_distance_km <= 10
    rejected = enriched.rejected.set_index("id")
    assert list(rejected.index) == ["pacific"]
    assert rejected.loc["pacific", "reason"] == "not on land"
    assert "nearest land" in rejected.loc["pacific", "detail"] and "km" in rejected.loc["pacific", "detail"]
    assert len(enriched.locations) + len(enriched.rejected) == enriched.n_input


def test_season_is_hemisphere_aware():
    assert list(season_of(np.array([1, 7, None], dtype=object), np.array([10.0, -10.0, 5.0]))) == [
        "winter",
        "winter",
        None,
    ]


def test_admin2_from_a_user_file(tmp_path, reference):
    import geopandas as gpd
    from shapely.geometry import box

    path = tmp_path / "admin2.geojson"
    gpd.GeoDataFrame({"NAME_2": ["Central Paris"]}, geometry=[box(2.2, 48.8, 2.5, 48.9)], crs=4326).to_file(path)
    raw = pd.DataFrame(
        {"id": ["a", "b"], "lat": [48.85, 45.0], "lon": [2.35, 3.0], "source": "m", "image_paths": [[], []]}
        | {"heading": np.nan, "captured_at": pd.NaT, "input_row": [0, 1]}
    )
    cfg = EnrichConfig(10, 6, 10, Admin2Config(str(path), "NAME_2"), SplitConfig(0, 0.1, 0.1, 1, 25))
    out = enrich_locations(raw, reference, cfg, tmp_path).locations
    assert out["admin2"].iloc[0] == "Central Paris" and pd.isna(out["admin2"].iloc[1])


def test_split_blocks_keep_val_test_away_from_train():
    rng = np.random.default_rng(1)
    lat = np.clip(rng.normal(45, 8, 3000), -89, 89)
    lon = rng.normal(5, 15, 3000)
    cfg = SplitConfig(seed=0, val_share=0.1, test_share=0.1, min_distance_km=100, block_km=600)
    split = spatial_split(lat, lon, cfg)
    assert set(split) == {"train", "val", "test", "buffer"}
    assert check_split(lat, lon, split, 100) >= 100
    # Brute force over all pairs agrees with the KD-tree check.
    train, held = split == "train", np.isin(split, ["val", "test"])
    d = haversine_km(lat[held][:, None], lon[held][:, None], lat[train][None, :], lon[train][None, :])
    assert d.min() >= 100
    assert np.array_equal(split, spatial_split(lat, lon, cfg))  # seeded


def test_split_caps_what_one_block_holds_out():
    """A dense block dealt to val gives it at most held_per_block locations (the rest: buffer),
    so one city cannot be most of a split; without the cap it is."""
    from ml.data.split import block_ids

    rng = np.random.default_rng(2)
    city = (51.5 + rng.normal(0, 0.3, 2000), -0.1 + rng.normal(0, 0.3, 2000))  # one 400 km block
    lat = np.concatenate([city[0], rng.uniform(-50, 60, 2000)])
    lon = np.concatenate([city[1], rng.uniform(-120, 140, 2000)])
    blocks = block_ids(lat, lon, 400)
    for seed in range(40):  # a seed that deals the city's block to val or test
        base = SplitConfig(seed=seed, val_share=0.1, test_share=0.1, min_distance_km=0, block_km=400)
        if spatial_split(lat, lon, base)[0] in ("val", "test"):
            break
    uncapped = spatial_split(lat, lon, base)
    capped = spatial_split(lat, lon, SplitConfig(seed, 0.1, 0.1, 0, 400, held_per_block=25))
    held = np.isin(capped, ["val", "test"])
    assert (uncapped[:2000] != "train").all() and not (capped[:2000] == "train").any()
    assert np.isin(capped[:2000], ["val", "test"]).sum() == 25  # the rest of the city: buffer
    assert max(np.unique(blocks[held], return_counts=True)[1]) <= 25
    assert np.array_equal(capped, spatial_split(lat, lon, SplitConfig(seed, 0.1, 0.1, 0, 400, held_per_block=25)))


def test_enriched_locations_smoke(smoke_chain):
    root, result = smoke_chain
    paths = Paths(root)
    db = paths.asset_db("enriched_locations")
    locations, rejected = read_table(db, "locations"), read_table(db, "rejected")
    raw = read_table(paths.asset_db("raw_locations"), "locations")
    assert len(locations) + len(rejected) == len(raw)
    assert set(locations["split"]) <= {"train", "val", "test", "buffer"}
    assert {"train", "val", "test"} <= set(locations["split"])
    cfg = load_config(EnrichConfig, paths.params)
    assert check_split(locations["lat"].to_numpy(), locations["lon"].to_numpy(), locations["split"].to_numpy(), 0) >= (
        cfg.split.min_distance_km
    )
    meta = result.asset_materializations_for_node("enriched_locations")[0].metadata
    assert meta["accepted"].value == len(locations)
    assert meta["map"].value.startswith("![locations by split](data:image/png;base64,")
    assert locations["country"].notna().mean() > 0.97


def test_a_stratified_split_gives_val_and_test_the_same_make_up():
    """Blocks dealt by region (continent, country) give val and test the same make-up, where
    dealing them in a random order does not; blocks stay whole and away from train."""
    from dataclasses import replace

    from ml.data.split import block_ids, split_makeup

    rng = np.random.default_rng(3)
    regions = [  # (continent|country, lat range, lon range, points): one dense country, the rest sparser
        ("North America|US", (30, 48), (-122, -72), 8000),
        ("Europe|FR", (43, 50), (-2, 7), 2000),
        ("Europe|DE", (48, 54), (7, 14), 2000),
        ("Asia|JP", (31, 42), (130, 142), 2000),
        ("Asia|IN", (10, 30), (72, 88), 2000),
        ("South America|BR", (-28, -5), (-55, -36), 2000),
        ("Africa|ZA", (-33, -24), (18, 31), 1000),
        ("Africa|KE", (-4, 4), (34, 41), 1000),
    ]
    lat = np.concatenate([rng.uniform(*la, n) for _, la, _, n in regions])
    lon = np.concatenate([rng.uniform(*lo, n) for _, _, lo, n in regions])
    strata = np.concatenate([[r] * n for r, _, _, n in regions])
    continent, country = (np.array([s.split("|")[i] for s in strata]) for i in (0, 1))
    cfg = SplitConfig(seed=0, val_share=0.05, test_share=0.06, min_distance_km=100, block_km=300, held_per_block=30)
    gaps = {}
    for stratify in (False, True):
        gaps[stratify] = []
        for seed in range(6):
            split = spatial_split(lat, lon, replace(cfg, seed=seed, stratify=stratify), None, strata)
            makeup = split_makeup(split, continent, country)
            gaps[stratify].append((makeup["largest_continent_gap"], makeup["largest_country_share_gap"]))
            if stratify:
                assert check_split(lat, lon, split, 100) >= 100
                blocks = block_ids(lat, lon, 300)
                for b in np.unique(blocks[np.isin(split, ["val", "test"])]):  # a block is dealt whole
                    assert len(set(split[(blocks == b) & np.isin(split, ["val", "test"])])) == 1
                assert (split == "val").sum() / np.isin(split, ["val", "test"]).sum() == pytest.approx(5 / 11, abs=0.03)
    assert max(c for c, _ in gaps[True]) <= 4 and max(u for _, u in gaps[True]) <= 3, gaps[True]  # 2.96, 2.24
    assert max(c for c, _ in gaps[False]) > 20, gaps[False]  # 22.42: what stratifying is for
