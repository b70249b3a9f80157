"""Operating Roost: each check on good data and on a constructed bad case, the schedule's cron,
the new-data sensor's cursor, and a blocking check stopping a downstream asset."""

from __future__ import annotations

import os
import time

import dagster as dg
import numpy as np
import pandas as pd
import yaml
from safetensors.numpy import save_file

from assets.resources import RoostResource
from ml import checks
from ml.landing import scan_landing
from ml.paths import Paths
from ml.store import read_table
from orchestration.definitions import ASSETS, CHECKS, defs


def test_rows_reconcile():
    assert checks.rows_reconcile(7, 3, 10, "rows")[0]
    ok, details = checks.rows_reconcile(7, 2, 10, "rows")
    assert not ok and details["missing"] == 1


def test_raw_rows_reconcile_per_batch_by_row_and_by_photo():
    """Input rows are numbered per batch: the same row number in two batches is two rows."""
    locations = pd.DataFrame(
        {"batch": ["base", "base", "trip"], "input_row": [0, 2, 0], "image_paths": [[], [], ["a.jpg", "b.jpg"]]}
    )
    rejected = pd.DataFrame({"batch": ["base", "trip"], "input_row": [1, 1]})
    batches = pd.DataFrame({"batch": ["base", "trip"], "source": ["default", "exif_folder"], "input_rows": [3, 3]})
    ok, details = checks.raw_rows_reconcile(locations, rejected, batches)
    assert ok and details["batches"]["trip"] == {"accepted": 2, "rejected": 1, "inputs": 3}  # 2 photos + 1
    wrong = batches.assign(input_rows=[3, 4])
    assert not checks.raw_rows_reconcile(locations, rejected, wrong)[0]
    twice = pd.DataFrame({"batch": ["base", "trip"], "input_row": [2, 1]})  # base row 2 accepted and rejected
    assert "both accepted and rejected" in checks.raw_rows_reconcile(locations, twice, batches)[1]["problems"][0]
    stray = pd.concat([rejected, pd.DataFrame({"batch": ["gone"], "input_row": [0]})])
    assert "not in the batches table" in checks.raw_rows_reconcile(locations, stray, batches)[1]["problems"][-1]


def test_views_and_captions(smoke_chain):
    root, _ = smoke_chain
    paths = Paths(root)
    db = paths.asset_db("location_images")
    images, rejected, lost = read_table(db, "images"), read_table(db, "rejected"), read_table(db, "rejected_locations")
    locations = read_table(paths.asset_db("enriched_locations"), "locations")
    assert checks.views_reconcile(images, rejected, lost, locations, len(images) + len(rejected))[0]
    assert not checks.views_reconcile(images.iloc[1:], rejected, lost, locations, len(images) + len(rejected))[0]
    caps = read_table(paths.asset_db("captions"), "captions")
    assert checks.captions_cover_views(caps, images)[0]
    first = caps.iloc[0]
    missing = caps[~((caps.location_id == first.location_id) & (caps.view == first.view))]
    ok, details = checks.captions_cover_views(missing, images)
    assert not ok and details["without_caption"] == 1


def test_one_cell_per_training_point():
    a = pd.DataFrame({"id": ["a", "b", "c"], "cell_id": [0, 1, 1]})
    assert checks.one_cell_per_training_point(a, ["a", "b", "c"], 2)[0]
    assert not checks.one_cell_per_training_point(a, ["a", "b", "c", "d"], 2)[0]  # d has no cell
    twice = pd.concat([a, pd.DataFrame({"id": ["a"], "cell_id": [1]})])
    assert checks.one_cell_per_training_point(twice, ["a", "b", "c"], 2)[1]["in_several_cells"] == 1
    assert not checks.one_cell_per_training_point(a.assign(cell_id=[0, 1, 5]), ["a", "b", "c"], 2)[0]


def test_finite_tensors(tmp_path):
    save_file({"w": np.ones((3, 3), np.float32), "i": np.arange(3)}, str(tmp_path / "good.safetensors"))
    bad = np.ones((2, 2), np.float32)
    bad[0, 1], bad[1, 1] = np.nan, np.inf
    save_file({"w": bad}, str(tmp_path / "bad.safetensors"))
    assert checks.finite_tensors([tmp_path / "good.safetensors"])[0]
    ok, details = checks.finite_tensors([tmp_path / "good.safetensors", tmp_path / "bad.safetensors"])
    assert not ok and details["non_finite"] == 2


def test_beats_medoid():
    medoid = {"within_200km": 5.0, "within_750km": 20.0, "within_2500km": 60.0, "median_km": 2000.0, "geoguessr": 900.0}
    model = {"within_200km": 9.0, "within_750km": 30.0, "within_2500km": 70.0, "median_km": 1500.0, "geoguessr": 1400.0}
    assert checks.beats_medoid(model, medoid)[0]
    ok, details = checks.beats_medoid(model | {"within_2500km": 59.0}, medoid)
    assert not ok and details["worse_at"] == ["within_2500km"]
    ok, details = checks.beats_medoid(model | {"median_km": 2100.0}, medoid)  # a longer median loses
    assert not ok and details["worse_at"] == ["median_km"]
    assert not checks.beats_medoid(medoid, medoid)[0]  # a tie everywhere is no skill
    assert checks.beats_medoid(model | {"within_200km": 1.4}, medoid | {"within_200km": 7.4})[0]  # not judged at 200 km
    assert not checks.beats_medoid(model, {})[0]  # unknown figures are no pass
    largest = medoid | {"within_2500km": 75.0}
    ok, details = checks.beats_baselines(model, {"train_medoid": medoid, "largest_country": largest})
    assert not ok and details["failed"] == {"largest_country": ["within_2500km"]}
    assert checks.beats_baselines(model, {"train_medoid": medoid, "largest_country": {}})[0]  # none known: left out


def test_bundle_verifies(smoke_chain, tmp_path):
    import shutil

    root, _ = smoke_chain
    assert checks.bundle_verifies(Paths(root).bundle)[0]
    copy = tmp_path / "bundle"
    shutil.copytree(Paths(root).bundle, copy)
    with open(copy / "geocells.parquet", "ab") as f:
        f.write(b"tampered")
    ok, details = checks.bundle_verifies(copy)
    assert not ok and "checksum" in details["error"]


def test_definitions_hold_the_automation():
    names = {s.name for s in defs.schedules} | {s.name for s in defs.sensors}
    assert {"retrain", "new_data", "run_failure_summary"} <= names
    schedule = defs.get_schedule_def("retrain")
    params = yaml.safe_load(open("params.yaml"))["automation"]
    assert schedule.cron_schedule == params["retrain_cron"] == "0 3 * * 0"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # off by default
    assert defs.get_sensor_def("new_data").default_status == dg.DefaultSensorStatus.STOPPED
    assert len(CHECKS) == 10 and all(c.check_specs for c in CHECKS)
    assert all(spec.blocking for c in CHECKS for spec in c.check_specs)


def test_landing_cursor(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "notes.txt").write_text("ignored")
    past = time.time() - 120
    arrivals, _, cursor = scan_landing(landing, None, settle_s=30)
    assert arrivals == []
    (landing / "batch1.csv").write_text("lat,lon\n1,2\n")
    os.utime(landing / "batch1.csv", (past, past))
    arrivals, _, cursor = scan_landing(landing, cursor, settle_s=30)
    assert [(a.name, a.source) for a in arrivals] == [("batch1.csv", "manifest")]
    assert scan_landing(landing, cursor, settle_s=30)[0] == []  # the same file again: nothing
    (landing / "trip").mkdir()
    (landing / "trip" / "a.jpg").write_bytes(b"x")  # just written: still arriving
    assert scan_landing(landing, cursor, settle_s=30)[0] == []
    os.utime(landing / "trip" / "a.jpg", (past, past))
    arrivals, _, _ = scan_landing(landing, cursor, settle_s=30)
    assert [(a.name, a.source) for a in arrivals] == [("trip", "exif_folder")]


def test_a_failed_blocking_check_stops_the_downstream_asset(smoke_chain, tmp_path):
    """streetclip diverges (a learning rate of 1e30): its weights are not finite, the blocking
    check fails, and geocell_model, downstream in the same run, is not materialized."""
    import shutil

    smoke, _ = smoke_chain
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    for name in ("location_images", "captions", "enriched_locations", "geocells", "reference"):
        (root / "data" / name).symlink_to((smoke / "data" / name).resolve())
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    params["streetclip"]["profiles"] = {"smoke": {"epochs": 1, "lr": 1e30, "warmup_fraction": 0.0}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=dg.AssetSelection.assets("streetclip", "geocell_model"),
        resources={"roost": RoostResource(root=str(root))},
        raise_on_error=False,
    )
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["streetclip_finite"] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "streetclip" in materialized and "geocell_model" not in materialized
    assert not (root / "data" / "geocell_model").exists()
    shutil.rmtree(root / "data" / "streetclip", ignore_errors=True)
