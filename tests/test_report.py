"""benchmark_report: metric functions by hand, the swapped-header detector, the smoke report."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from assets.resources import RoostResource
from ml.cli import main
from ml.config import load_config
from ml.data.images import ImageStore
from ml.eval.evaluate import SwappedColumnsError, read_eval_manifest
from ml.eval.metrics import bootstrap_interval, members_of, set_metrics
from ml.geo.haversine import haversine_km
from ml.geo.scores import distance_summary, geoguessr_score
from ml.paths import Paths
from ml.settings import GUESSES, EnrichConfig, RefineConfig
from ml.store import read_table
from orchestration.definitions import ASSETS


def test_known_distances_and_scores():
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)
    assert haversine_km(40.7128, -74.0060, 34.0522, -118.2437) == pytest.approx(3936, abs=5)
    assert geoguessr_score(0.0) == 5000.0
    assert geoguessr_score(1492.7) == pytest.approx(5000 / np.e)


def test_thresholds_are_inclusive():
    s = distance_summary([1.0, 25.0, 25.0001, 2500.0])
    assert s["within_1km"] == 25.0 and s["within_25km"] == 50.0 and s["within_2500km"] == 100.0
    assert s["median_km"] == pytest.approx((25.0 + 25.0001) / 2)


def test_intervals_contain_the_value():
    frame = pd.DataFrame({"distance_km": np.random.default_rng(0).exponential(500, 300)})
    m = set_metrics(frame, n_boot=200, seed=0)
    for v in m.values():
        assert v["low"] <= v["value"] <= v["high"]


def test_the_block_bootstrap_resamples_whole_blocks():
    """Two blocks of 50 equal values each, 0 and 1: a resample of blocks is 00, 01, 10 or 11, so
    its mean is 0, 0.5 or 1 and each extreme has probability 1/4: the 95% interval is [0, 1]. A
    resample of locations keeps the mean near 0.5 (its interval: about 0.4 - 0.6)."""
    values = np.repeat([0.0, 1.0], 50)
    blocks = np.repeat(["mp16-10", "mp16-9"], 50)  # labels, not positions
    assert bootstrap_interval(values, np.mean, 1000, 0, blocks) == (0.0, 1.0)
    lo, hi = bootstrap_interval(values, np.mean, 1000, 0)
    assert 0.3 < lo < 0.5 < hi < 0.7
    one_block = np.zeros(100, dtype=int)  # a single block: every resample is the whole set
    spread = np.random.default_rng(0).exponential(500, 100)
    assert bootstrap_interval(spread, np.median, 200, 0, one_block) == (np.median(spread), np.median(spread))
    shuffled = np.random.default_rng(1).permutation(100) % 7  # blocks whose rows are interleaved
    members = members_of(shuffled)
    assert sorted(np.concatenate(members).tolist()) == list(range(100))
    assert all((shuffled[m] == shuffled[m[0]]).all() for m in members)


def test_swapped_headers_are_detected(tmp_path):
    path = tmp_path / "im2gps3k.csv"
    pd.DataFrame({"image_path": ["a.jpg"], "lat": [-122.4], "lon": [37.77]}).to_csv(path, index=False)
    with pytest.raises(SwappedColumnsError, match="headers look swapped"):
        read_eval_manifest(path, swap=False)
    fixed = read_eval_manifest(path, swap=True)
    assert (fixed["lat"].iloc[0], fixed["lon"].iloc[0]) == (37.77, -122.4)


@pytest.fixture(scope="module")
def user_set(smoke_chain, tmp_path_factory):
    """Some stored views of smoke test locations written out as files, as a user set would be."""
    root, _ = smoke_chain
    paths = Paths(root)
    folder = tmp_path_factory.mktemp("userset")
    locations = read_table(paths.asset_db("enriched_locations"), "locations", "WHERE split = 'test'").head(6)
    images = read_table(paths.asset_db("location_images"), "images")
    store = ImageStore(paths.shards)
    rows = []
    for loc in locations.itertuples():
        key = images[(images.location_id == loc.id) & (images.view == 0)]["key"].iloc[0]
        Image.fromarray(store.read(key)).save(folder / f"{loc.id}.png")
        rows.append({"id": loc.id, "lat": loc.lat, "lon": loc.lon, "image_path": f"{loc.id}.png"})
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    rows.append({"id": "broken", "lat": 1.0, "lon": 1.0, "image_path": "broken.png"})
    pd.DataFrame(rows).to_csv(folder / "set.csv", index=False)
    return folder / "set.csv"


UPSTREAM = ("raw_locations", "enriched_locations", "location_images", "captions", "geocells", "streetclip")
UPSTREAM += ("geocell_model", "prototypes", "model_bundle")


def test_report_smoke_with_holdout_and_a_user_set(smoke_chain, user_set, tmp_path):
    """The report with a user set, in a root of its own (the shared chain stays untouched):
    the user set's figures are those of `Geolocator` on the same files."""
    from ml.predict import Geolocator, Item
    from tests.conftest import make_root

    smoke, _ = smoke_chain
    sets = [{"name": "mine", "manifest": str(user_set), "swap_lat_lon": False}]
    root = make_root(tmp_path / "project", overrides={"benchmark_report": {"sets": sets}})
    for asset in UPSTREAM:  # the chain's outputs, read only
        Paths(root).asset_dir(asset).symlink_to(Paths(smoke).asset_dir(asset))
    result = dg.materialize(ASSETS, selection=["benchmark_report"], resources={"roost": RoostResource(root=str(root))})
    assert result.success
    out = Paths(root).asset_dir("benchmark_report")
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"holdout", "val", "mine"} and metrics["mine"]["n"] == 6
    viewed = set(read_table(Paths(smoke).asset_db("location_images"), "images")["location_id"].astype(str))
    for name, split in (("holdout", "test"), ("val", "val")):  # val beside test: where choices are made
        held = read_table(Paths(smoke).asset_db("enriched_locations"), "locations", f"WHERE split = '{split}'")
        assert metrics[name]["n"] == held["id"].astype(str).isin(viewed).sum() > 0
        assert 0 < metrics[name]["largest_country_share"] <= 100 and "country_macro_accuracy" in metrics[name]

    truth = pd.read_csv(user_set).query("id != 'broken'")
    items = [Item(i, [user_set.parent / p]) for i, p in zip(truth["id"], truth["image_path"])]
    geo = Geolocator(Paths(smoke).bundle)
    for mode in GUESSES:  # the model row (the bundle's refine.guess) and a row per other mode
        geo.refine = geo.refine_as(mode)
        guesses = geo.predict_items(items)
        km = haversine_km(
            truth["lat"].to_numpy(), truth["lon"].to_numpy(), [g["lat"] for g in guesses], [g["lon"] for g in guesses]
        )
        configured = load_config(RefineConfig, root / "params.yaml").guess
        row = metrics["mine"] if mode == configured else metrics["mine"][f"guess_{mode}"]
        assert row["median_km"] == pytest.approx(np.median(km), abs=0.01), mode
        assert row["within_2500km"] == pytest.approx(100 * np.mean(km <= 2500), abs=0.01), mode
    # a block bootstrap over the smoke holdout's few blocks need not straddle the value (a
    # resample of whole blocks is not centred on it), so only the interval's own shape here;
    # what the block bootstrap computes: test_the_block_bootstrap_resamples_whole_blocks
    for name, v in metrics["holdout"]["intervals"].items():
        if not (name == "country_macro_accuracy" and np.isnan(metrics["holdout"][name])):  # no country with 5
            assert v["low"] <= v["high"], name

    smoke_block_km = load_config(EnrichConfig, root / "params.yaml").split.block_km
    assert f"blocks of {smoke_block_km:g} km whole" in (out / "reports" / "holdout.md").read_text()
    assert "the bootstrap resamples locations." in (out / "reports" / "mine.md").read_text()
    html = (out / "reports" / "holdout.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html and "PIGEON" in html
    curve = pd.read_csv(out / "error_curve_holdout.csv")
    assert curve["percent_within"].is_monotonic_increasing
    assert set(metrics["holdout"]["zero_shot_streetclip"]) >= {"country_accuracy", "median_km"}
    assert "zero-shot streetclip" in (out / "reports" / "holdout.md").read_text()


def test_dvc_reads_the_metrics_and_plots(smoke_chain, tmp_path):
    """`dvc metrics show` and `dvc plots show` read the report's outputs through dvc.yaml."""
    import shutil
    import subprocess

    from tests.conftest import REPO

    dvc = REPO / ".venv-dvc" / "bin" / "dvc"
    if not dvc.exists():
        pytest.fail(f"{dvc} missing: `make test` installs DVC's environment first")
    smoke, _ = smoke_chain
    root = tmp_path / "project"  # the report's outputs and dvc.yaml; the shared chain stays as it is
    shutil.copytree(Paths(smoke).asset_dir("benchmark_report"), Paths(root).asset_dir("benchmark_report"))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(smoke / "params.yaml", root / "params.yaml")  # dvc.yaml interpolates params
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=root, check=True)
    shown = subprocess.run([dvc, "metrics", "show", "--json"], cwd=root, check=True, capture_output=True, text=True)
    read = json.loads(shown.stdout)[""]["data"]["data/benchmark_report/metrics.json"]["data"]
    assert read == json.loads((root / "data" / "benchmark_report" / "metrics.json").read_text())
    plots = subprocess.run([dvc, "plots", "show", "--json"], cwd=root, check=True, capture_output=True, text=True)
    assert "errors" not in json.loads(plots.stdout)


def test_roost_evaluate_cli(smoke_chain, user_set, tmp_path, capsys):
    root, _ = smoke_chain
    code = main(
        [
            "evaluate",
            str(user_set),
            "--bundle",
            str(Paths(root).bundle),
            "--out",
            str(tmp_path),
            "--bootstrap",
            "50",
            "--zero-shot",
            str(Paths(root).streetclip_model),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "within_25km" in out and "1 images could not be read" in out
    assert "zero-shot" in (tmp_path / "set.md").read_text()
    assert (tmp_path / "set.html").exists()


def test_the_largest_country_baseline():
    """Always the medoid of the largest training country: three French training points beat one
    American; half the truth lies in France."""
    from ml.eval.metrics import baselines

    train_lat, train_lon = np.array([48.85, 45.76, 43.30, 40.71]), np.array([2.35, 4.84, 5.37, -74.0])
    b = baselines([48.85, 52.52], [2.35, 13.40], train_lat, train_lon, 0, ["FR", "FR", "FR", "US"], ["FR", "DE"])
    largest = b["largest_country"]
    assert largest["country"] == "FR" and (largest["lat"], largest["lon"]) == (45.76, 4.84)  # Lyon: the medoid
    assert largest["country_accuracy"] == 50.0
    assert largest["median_km"] == pytest.approx(
        np.median([haversine_km(48.85, 2.35, 45.76, 4.84), haversine_km(52.52, 13.40, 45.76, 4.84)])
    )
    assert "largest_country" not in baselines([0.0], [0.0], train_lat, train_lon, 0)


def test_macro_country_accuracy_and_the_largest_country_share():
    """A set dominated by one country: the micro accuracy follows it, the macro one counts each
    country with >= 5 locations once (DE, with 3, is left out)."""
    from ml.eval.metrics import largest_share, set_metrics

    country = ["US"] * 10 + ["FR"] * 5 + ["DE"] * 3
    correct = [True] * 10 + [False] * 5 + [True] * 3
    frame = pd.DataFrame({"distance_km": np.full(18, 100.0), "country": country, "country_correct": correct})
    m = set_metrics(frame, 200, 0)
    assert m["country_accuracy"]["value"] == pytest.approx(100 * 13 / 18)
    assert m["country_macro_accuracy"]["value"] == pytest.approx(50.0)  # (US 100% + FR 0%) / 2
    assert m["country_macro_accuracy"]["low"] <= 50.0 <= m["country_macro_accuracy"]["high"]
    assert largest_share(country) == ("US", pytest.approx(100 * 10 / 18))
