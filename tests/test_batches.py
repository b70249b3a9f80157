"""Batches of new data add to the corpus: the configured source plus every batch landed in
``automation.landing``, with namespaced ids, content duplicates rejected with their reason,
counts that reconcile per batch and overall, a split that never moves a dealt location and
never trains beside the holdout, removal, and the sensor that refreshes the chain."""

from __future__ import annotations

import json
import os
import shutil
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.resources import RoostResource
from ml.cli import main
from ml.config import load_config
from ml.data.split import check_split, spatial_split
from ml.landing import AutomationConfig, LandingError, add_batch, landed_batches, remove_batch, scan_landing
from ml.paths import Paths
from ml.settings import EnrichConfig, RawLocationsConfig
from ml.stages.enriched_locations import read_locations
from ml.stages.raw_locations import read_raw_locations, run_raw_locations
from orchestration.definitions import ASSETS, CHECKS
from tests.conftest import make_root
from tests.test_exif import photo


def gallery_rows(root, n: int) -> pd.DataFrame:
    """Gallery places the smoke sample did not draw (no two alike, none at a sampled place), as
    a user's manifest would hold."""
    gallery = pd.read_csv(root / "data" / "reference" / "mp16_gallery_100k.csv")[["lat", "lon"]]
    taken = read_raw_locations(Paths(root))[["lat", "lon"]]
    place = gallery.round(6).astype(str).agg(",".join, axis=1)
    fresh = gallery[~place.isin(set(taken.round(6).astype(str).agg(",".join, axis=1))) & ~place.duplicated()]
    return fresh.iloc[:n].reset_index(drop=True)


def manifest(path, rows: pd.DataFrame):
    """A manifest with ids 9, 10, 11, ...: their string and numeric orders differ ('10' < '9')."""
    table = rows.copy()
    table.insert(0, "id", [str(i + 9) for i in range(len(rows))])
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path


def reconciles(result) -> None:
    batches = result.tables["batches"]
    assert (batches["in_locations"] + batches["rejected"] == batches["input_rows"]).all(), batches
    for b in batches.itertuples():
        assert (result.locations["batch"] == b.batch).sum() == b.locations
        assert (result.rejected["batch"] == b.batch).sum() == b.rejected
    assert len(result.rejected) == batches["rejected"].sum() and result.n_input == batches["input_rows"].sum()


@pytest.fixture
def project(tmp_path):
    root = make_root(tmp_path / "p")
    paths = Paths(root)
    cfg = load_config(RawLocationsConfig, paths.params)
    landing = load_config(AutomationConfig, paths.params).landing
    base = run_raw_locations(paths, cfg, landing)
    return paths, cfg, landing, base


def test_batches_accumulate_with_namespaced_ids_and_duplicates_rejected(project):
    paths, cfg, landing, base = project
    folder = paths.resolve(landing)
    fresh = gallery_rows(paths.root, 12)
    first = manifest(folder / "20261201-000000-first.csv", fresh.iloc[:8])
    base_row = read_raw_locations(paths).iloc[[3]][["lat", "lon"]]  # a location the base holds already
    second_rows = pd.concat([fresh.iloc[8:], base_row, fresh.iloc[[0]], pd.DataFrame({"lat": ["x"], "lon": [1]})])
    manifest(folder / "20261202-000000-second.csv", second_rows.reset_index(drop=True))

    one = run_raw_locations(paths, cfg, landing)
    reconciles(one)
    counts = one.tables["batches"].set_index("batch")
    assert list(counts.index) == ["base", "20261201-000000-first", "20261202-000000-second"]
    assert counts.loc["base", "locations"] == len(base.locations)
    assert counts.loc["20261201-000000-first", "locations"] == 8
    assert counts.loc["20261202-000000-second", ["locations", "rejected", "duplicates"]].tolist() == [4, 3, 2]
    assert len(one.locations) == len(base.locations) + 12 and one.locations["id"].is_unique
    ids = set(one.locations.loc[one.locations["batch"] == "20261201-000000-first", "id"])
    assert ids == {f"20261201-000000-first/{i}" for i in range(9, 17)}
    rejected = one.rejected[one.rejected["batch"] == "20261202-000000-second"].set_index("input_row")["reason"]
    base_id = read_raw_locations(paths).iloc[3]["id"]  # the base's ids are its own (no namespace)
    assert rejected.loc[4] == f"duplicate of {base_id}"
    assert rejected.loc[5] == "duplicate of 20261201-000000-first/9"
    assert rejected.loc[6] == "lat is not a number"
    assert one.reason_counts()["duplicate of an earlier location"] == 2

    # the same manifest landed again under another name adds nothing; every row says what it repeats
    shutil.copy(first, folder / "20261203-000000-again.csv")
    two = run_raw_locations(paths, cfg, landing)
    reconciles(two)
    again = two.rejected[two.rejected["batch"] == "20261203-000000-again"].sort_values("input_row")
    assert len(two.locations) == len(one.locations) and len(again) == 8
    assert again["reason"].tolist() == [f"duplicate of 20261201-000000-first/{i}" for i in ids_in_order(first)]

    # removed: gone from the next run, kept where `remove` put it
    moved = remove_batch(folder, paths.resolve("data/cache/removed_batches"), "20261201-000000-first")
    assert moved.exists() and not (folder / "20261201-000000-first.csv").exists()
    three = run_raw_locations(paths, cfg, landing)
    reconciles(three)
    assert not three.locations["batch"].eq("20261201-000000-first").any()
    # its rows are new again: the second batch's copy of its first row now comes first
    assert three.tables["batches"].set_index("batch")["locations"].tolist() == [len(base.locations), 5, 7]
    again = three.rejected[three.rejected["batch"] == "20261203-000000-again"]
    assert again["reason"].tolist() == ["duplicate of 20261202-000000-second/14"]


def ids_in_order(path) -> list[str]:
    return pd.read_csv(path, dtype=str)["id"].tolist()


def test_a_photo_folder_batch_counts_photos_and_rejects_a_repeated_photo(project, tmp_path):
    paths, cfg, landing, base = project
    folder = paths.resolve(landing)
    trip = folder / "trip"
    photo(trip / "a.jpg", 48.8580, 2.2945)
    photo(trip / "b.jpg", -33.8568, 151.2153)
    photo(trip / "no_gps.jpg")
    again = folder / "trip2"
    again.mkdir()
    shutil.copy(trip / "b.jpg", again / "b_copy.jpg")  # the same photo under another name
    result = run_raw_locations(paths, cfg, landing)
    reconciles(result)
    counts = result.tables["batches"].set_index("batch")
    assert counts.loc["trip", ["input_rows", "locations", "rejected"]].tolist() == [3, 2, 1]
    assert counts.loc["trip2", ["input_rows", "locations", "duplicates"]].tolist() == [1, 0, 1]
    (dup,) = result.rejected[result.rejected["batch"] == "trip2"].itertuples()
    assert dup.reason == "duplicate of trip/b.jpg" and "b_copy.jpg" in dup.row_json
    assert set(result.tables["exif"]["batch"]) == {"trip", "trip2"}


def test_landing_names_add_and_clashes(tmp_path):
    folder = tmp_path / "landing"
    src = manifest(tmp_path / "mine.csv", pd.DataFrame({"lat": [1.0], "lon": [2.0]}))
    from datetime import datetime

    added = add_batch(folder, src, now=datetime(2026, 12, 6, 4, 0, 0))
    assert added.name == "20261206-040000-mine.csv"
    later = add_batch(folder, src, name="other", now=datetime(2026, 12, 6, 5, 0, 0))
    assert [b.name for b in landed_batches(folder)] == ["20261206-040000-mine", "20261206-050000-other"]
    shutil.copy(later, folder / "20261206-050000-other.parquet")
    with pytest.raises(LandingError, match="both batch '20261206-050000-other'"):
        landed_batches(folder)
    (folder / "20261206-050000-other.parquet").unlink()
    (folder / "base").mkdir()
    with pytest.raises(LandingError, match="configured source's"):
        landed_batches(folder)
    (folder / "base").rmdir()
    with pytest.raises(LandingError, match="no batch 'nope'"):
        remove_batch(folder, tmp_path / "removed", "nope")


def test_new_batches_never_move_dealt_locations_nor_train_beside_the_holdout():
    rng = np.random.default_rng(7)
    from ml.settings import SplitConfig

    cfg = SplitConfig(seed=3, val_share=0.1, test_share=0.1, min_distance_km=100, block_km=500, held_per_block=20)
    lat0, lon0 = rng.uniform(-50, 60, 3000), rng.uniform(-120, 140, 3000)
    base = spatial_split(lat0, lon0, cfg)
    held = np.flatnonzero(np.isin(base, ["val", "test"]))
    # batch 1: points right beside held-out locations (the leak to prevent), and in new places
    near = held[:200]
    lat1 = np.concatenate([lat0[near] + rng.normal(0, 0.2, 200), rng.uniform(-50, 60, 300)])
    lon1 = np.concatenate([lon0[near] + rng.normal(0, 0.2, 200), rng.uniform(-180, 180, 300)])
    lat2, lon2 = rng.uniform(-50, 60, 400), rng.uniform(-180, 180, 400)
    lat, lon = np.concatenate([lat0, lat1, lat2]), np.concatenate([lon0, lon1, lon2])
    wave = np.repeat([0, 1, 2], [3000, 500, 400])
    split = spatial_split(lat, lon, cfg, wave)
    assert (split[:3000] == base).all()  # the base is dealt as without batches
    one_batch = spatial_split(lat[:3500], lon[:3500], cfg, wave[:3500])
    assert (split[:3500] == one_batch).all()  # a later batch moves nothing of an earlier one
    assert check_split(lat, lon, split, 100) >= 100  # no val/test location within 100 km of train
    assert {"train", "val", "test", "buffer"} <= set(split[3000:])
    assert (split[3000:3200] != "train").all()  # beside the holdout: never trained on


def test_the_split_through_the_assets_keeps_the_holdout_clean(tmp_path):
    root = make_root(tmp_path / "p")
    paths = Paths(root)
    resources = {"roost": RoostResource(root=str(root))}
    assert dg.materialize(ASSETS[:2], resources=resources).success
    before = read_locations(paths).set_index("id")["split"]
    held = read_locations(paths)
    held = held[held["split"] == "test"]
    beside = pd.DataFrame({"lat": held["lat"].to_numpy() + 0.05, "lon": held["lon"].to_numpy() + 0.05})
    manifest(paths.resolve("data/landing/beside.csv"), pd.concat([beside, gallery_rows(root, 60)], ignore_index=True))
    result = dg.materialize([*ASSETS[:2], *CHECKS[:2]], resources=resources)  # with the reconcile checks
    assert (
        all(e.passed for e in result.get_asset_check_evaluations()) and len(result.get_asset_check_evaluations()) == 2
    )
    meta = result.asset_materializations_for_node("raw_locations")[0].metadata
    assert "| beside |" in meta["by_batch"].value and meta["batches"].value == 1
    after = read_locations(paths)
    assert (after.set_index("id")["split"].loc[before.index] == before).all()  # the base keeps its split
    assert after["batch"].eq("beside").sum() > 0
    cfg = load_config(EnrichConfig, paths.params).split
    lat, lon, split = after["lat"].to_numpy(), after["lon"].to_numpy(), after["split"].to_numpy()
    assert check_split(lat, lon, split, cfg.min_distance_km) >= cfg.min_distance_km
    new_beside = after[after["id"].isin({f"beside/{i + 9}" for i in range(len(held))})]
    assert len(new_beside) and not new_beside["split"].eq("train").any()


def test_the_sensor_refreshes_the_whole_chain_on_arrivals_and_removals(tmp_path, monkeypatch):
    from assets.history import EXPERIMENT_TAG
    from orchestration.automation import landing_sensor
    from orchestration.definitions import AUTOMATION, roost_chain

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "landing"
    sensor = landing_sensor(roost_chain, AUTOMATION, Paths(tmp_path))
    past = time.time() - 120
    for name in ("a.csv", "b.csv"):
        manifest(folder / name, pd.DataFrame({"lat": [48.85], "lon": [2.35]}))
        os.utime(folder / name, (past, past))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=None)
        (request,) = [r for r in sensor(context) if isinstance(r, dg.RunRequest)]
        assert request.run_config == {} and request.tags["roost/landing"] == "a.csv, b.csv"  # the whole corpus
        assert request.tags[EXPERIMENT_TAG].startswith("landing-a.csv-b.csv-")  # its run ends as a DVC experiment
        quiet = dg.build_sensor_context(instance=instance, cursor=context.cursor)
        assert not [r for r in sensor(quiet) if isinstance(r, dg.RunRequest)]
        (folder / "a.csv").unlink()
        gone = dg.build_sensor_context(instance=instance, cursor=quiet.cursor)
        (request,) = [r for r in sensor(gone) if isinstance(r, dg.RunRequest)]
        assert request.tags["roost/removed"] == "a.csv"
    assert scan_landing(folder, json.dumps({"b.csv": "x"}), 30)[1] == []


def test_roost_batches_list_add_remove(project, tmp_path, capsys, monkeypatch):
    paths, cfg, landing, _ = project
    monkeypatch.chdir(paths.root)
    src = manifest(tmp_path / "trip.csv", gallery_rows(paths.root, 3))
    assert main(["batches", "add", str(src)]) == 0
    name = landed_batches(paths.resolve(landing))[0].name
    assert name.endswith("-trip") and "added batch" in capsys.readouterr().out
    assert main(["batches"]) == 0
    listed = capsys.readouterr().out
    assert "base" in listed and name in listed and "not yet run" in listed
    run_raw_locations(paths, cfg, landing)
    assert main(["batches", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(name))
    assert row.split()[1:5] == ["manifest", "3", "0", "0"]
    assert main(["batches", "remove", name]) == 0 and landed_batches(paths.resolve(landing)) == []
    assert main(["batches", "remove", name]) == 2 and "no batch" in capsys.readouterr().err
