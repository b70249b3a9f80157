"""The promotion gate (the champion asset) on the smoke chain's bundle and a deliberately worse
one: the first bundle is promoted without a champion, a better challenger replaces the
champion, a worse one is refused and leaves it byte-identical, ``force`` promotes a worse one
and says so; ``roost predict`` with no ``--bundle`` answers from the champion."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import dagster as dg
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from safetensors.numpy import load_file, save_file

from assets.champion import champion
from assets.resources import RoostResource
from ml.bundle import MANIFEST, bundle_id, read_manifest, sha256
from ml.cli import main
from ml.config import load_config
from ml.paths import Paths
from ml.settings import PromotionConfig, ReportConfig
from ml.stages.benchmark_report import run_benchmark_report
from ml.stages.champion import judge, read_verdicts, run_champion
from tests.conftest import make_root


def antipodal(bundle: Path, out: Path) -> Path:
    """``bundle`` with every cell centroid, site and prototype moved to its antipode (and the
    manifest's checksums renewed): the same network, guessing the far side of the Earth."""
    shutil.copytree(bundle, out)
    cells = gpd.read_parquet(out / "geocells.parquet")
    cells["centroid_lat"], cells["centroid_lon"] = -cells["centroid_lat"], (cells["centroid_lon"] + 360) % 360 - 180
    cells.to_parquet(out / "geocells.parquet")
    for name in ("geocell_sites.parquet", "prototypes.parquet"):
        t = pd.read_parquet(out / name)
        t["lat"], t["lon"] = -t["lat"], (t["lon"] + 360) % 360 - 180
        t.to_parquet(out / name, index=False)
    protos = load_file(out / "prototypes.safetensors")
    protos["lat"], protos["lon"] = -protos["lat"], (protos["lon"] + 360) % 360 - 180
    save_file(protos, out / "prototypes.safetensors")
    manifest = read_manifest(out)
    manifest["files"] = {name: sha256(out / name) for name in manifest["files"]}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


@pytest.fixture(scope="module")
def gate(smoke_chain, tmp_path_factory):
    """A project root with the smoke chain's holdout data, its bundle (good) and the antipodal
    bundle (bad) beside it."""
    smoke, _ = smoke_chain
    base = tmp_path_factory.mktemp("gate")
    root = make_root(base / "p", overrides={"promotion": {"tolerance": 0.0}})  # any shortfall refuses
    for asset in ("enriched_locations", "location_images", "streetclip"):  # the report's inputs
        shutil.copytree(smoke / "data" / asset, root / "data" / asset)
    good = shutil.copytree(Paths(smoke).bundle, base / "good")
    return Paths(root), good, antipodal(good, base / "bad")


def challenge(paths: Paths, bundle: Path) -> None:
    """``bundle`` as model_bundle's, with its report (the challenger's figures)."""
    shutil.rmtree(paths.bundle, ignore_errors=True)
    shutil.copytree(bundle, paths.bundle)
    run_benchmark_report(paths, load_config(ReportConfig, paths.params))


def test_judge_by_hand():
    champion = {"geoguessr": {"value": 2000, "low": 1800, "high": 2200}}
    champion |= {"median_km": {"value": 800, "low": 600, "high": 1000}}
    champion |= {"country_accuracy": {"value": 0.5, "low": 0.4, "high": 0.6}}
    close = {"geoguessr": {"value": 1900}, "median_km": {"value": 890}, "country_accuracy": {"value": 0.45}}
    assert judge(close, champion, 1.0, False)[:2] == (True, [])  # within one half-width everywhere
    promoted, worse, allowed = judge(close, champion, 0.0, False)
    assert (promoted, worse) == (False, ["geoguessr", "median_km", "country_accuracy"])
    assert allowed == {"geoguessr": 0.0, "median_km": 0.0, "country_accuracy": 0.0}
    far = close | {"median_km": {"value": 1001}}
    assert judge(far, champion, 1.0, False)[:2] == (False, ["median_km"])
    assert judge(far, champion, 1.0, True)[:2] == (True, ["median_km"])  # forced


def test_the_gate_promotes_refuses_and_forces(gate, caplog):
    paths, good, bad = gate
    cfg = PromotionConfig(tolerance=0.0, force=False)
    challenge(paths, bad)
    first = run_champion(paths, cfg)
    assert first.promoted and "no champion" in first.reason and not first.champion
    assert read_manifest(paths.champion)["files"] == read_manifest(bad)["files"]

    challenge(paths, good)  # better than the antipodal champion
    better = run_champion(paths, cfg)
    assert better.promoted and not better.worse, better
    assert better.challenger["geoguessr"]["value"] > better.champion["geoguessr"]["value"]
    assert read_manifest(paths.champion)["files"] == read_manifest(good)["files"]

    challenge(paths, bad)  # worse: refused, through the asset (the UI's metadata and the run's log)
    before = {p.relative_to(paths.champion): sha256(p) for p in paths.champion.rglob("*") if p.is_file()}
    result = dg.materialize([champion], resources={"roost": RoostResource(root=str(paths.root))})
    meta = result.asset_materializations_for_node("champion")[0].metadata
    assert meta["verdict"].value == "refused" and "geoguessr" in meta["reason"].value
    assert "| geoguessr |" in meta["figures"].value and meta["champion_bundle"].value == bundle_id(read_manifest(good))
    after = {p.relative_to(paths.champion): sha256(p) for p in paths.champion.rglob("*") if p.is_file()}
    assert after == before

    with caplog.at_level("WARNING"):
        forced = run_champion(paths, replace(cfg, force=True))
    assert forced.promoted and forced.forced and "forced" in forced.reason
    assert any("forced" in r.getMessage() for r in caplog.records)
    assert read_manifest(paths.champion)["files"] == read_manifest(bad)["files"]
    verdicts = read_verdicts(paths)
    assert [v["promoted"] for v in verdicts] == [True, True, False, True]
    # the champion re-scored equals its own report (metrics.json keeps 4 decimals)
    assert verdicts[2]["champion"]["geoguessr"]["value"] == pytest.approx(
        better.challenger["geoguessr"]["value"], abs=1e-3
    )


def test_predict_without_a_bundle_answers_from_the_champion(gate, tmp_path, monkeypatch, capsys):
    paths, good, bad = gate
    if not paths.champion.exists():
        challenge(paths, bad)
        run_champion(paths, PromotionConfig(tolerance=0.0, force=True))
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(image)
    monkeypatch.chdir(paths.root)

    def guess(*bundle):
        assert main(["predict", "--format", "json", *bundle, str(image)]) == 0
        (r,) = json.loads(capsys.readouterr().out)
        return r["lat"], r["lon"]

    assert guess() == guess("--bundle", str(paths.champion))
    assert guess() != guess("--bundle", str(good))  # the champion is the antipodal bundle
    shutil.rmtree(paths.champion.parent)
    assert main(["predict", str(image)]) == 2
    assert "no champion bundle yet" in capsys.readouterr().err
