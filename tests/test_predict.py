"""roost predict on the smoke bundle: formats, per-input errors, grouping, explanations."""

import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ml.cli import main
from ml.paths import Paths
from ml.predict import Geolocator, Item, attention_rollout, explain
from ml.settings import GUESSES


@pytest.fixture(scope="module")
def bundle(smoke_chain):
    root, _ = smoke_chain
    return Paths(root).bundle


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(d / f"good{i}.jpg")
    good = (d / "good0.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "notes.txt").write_text("not an image")
    return d


def run_cli(capsys, *args):
    code = main(["predict", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_with_per_input_errors(bundle, photos, capsys):
    files = [photos / "good0.jpg", photos / "truncated.jpg", photos / "good1.jpg", photos / "notes.txt"]
    code, out, err = run_cli(capsys, "--bundle", str(bundle), "--format", "json", *map(str, files))
    results = json.loads(out)
    assert code == 1 and "not on photos" in err
    assert [r["input"] for r in results] == list(map(str, files))
    assert "error" in results[1] and "corrupt or truncated" in results[1]["error"]
    assert "error" in results[3] and "unsupported" in results[3]["error"]
    for r, path in ((results[0], files[0]), (results[2], files[2])):
        assert {"country", "admin1", "radius_km", "top_cells"} <= set(r)
        check_against_the_model(bundle, path, r)


def check_against_the_model(bundle, path, r):
    """The CLI's answer recomputed from the bundle's parts: the cell probabilities from the
    model's own logits, the 50% radius from all cells' probabilities, the guess at the top
    cell's centroid or one of the top cells' prototypes, the country from the polygons."""
    import geopandas as gpd
    import shapely

    from ml.data.images import load_image
    from ml.geo.haversine import haversine_km
    from ml.models.backbone import preprocess

    geo = Geolocator(bundle)
    with torch.no_grad():
        emb = geo.model.embed_views(preprocess([load_image(path, 10**8)], geo.spec)).float()
        probs = torch.softmax(geo.model.heads(emb)["cells"].float(), dim=1)[0].numpy()
    top = np.argsort(-probs)[:5]
    assert [c["cell_id"] for c in r["top_cells"]] == top.tolist()
    assert [c["probability"] for c in r["top_cells"]] == pytest.approx(probs[top].tolist(), abs=1e-4)
    d = haversine_km(r["lat"], r["lon"], geo.centroids[:, 0], geo.centroids[:, 1])
    inside = [probs[d <= km].sum() for km in sorted(d)]
    radius = sorted(d)[next(i for i, p in enumerate(inside) if p >= 0.5 - 1e-6)]
    assert r["radius_km"] == pytest.approx(radius, abs=0.1)
    protos = geo.prototypes
    candidates = [tuple(geo.centroids[top[0]])] + [
        (protos.lat[i], protos.lon[i]) for i in range(len(protos.cell)) if protos.cell[i] in top
    ]
    assert min(haversine_km(r["lat"], r["lon"], la, lo) for la, lo in candidates) < 0.01
    countries = gpd.read_parquet(bundle / "reference" / "admin0_naturalearth_10m.parquet")
    hit = countries[shapely.contains(countries.geometry.to_numpy(), shapely.Point(r["lon"], r["lat"]))]
    if len(hit):  # on land: the polygon that holds the guess names it
        assert r["country"] in set(hit[["iso_a2", "iso_a3", "adm0_a3"]].astype(str).to_numpy().ravel())


def test_guess_flag_picks_the_refine_guess_mode(bundle, photos, capsys, monkeypatch):
    """--guess MODE predicts with that refine.guess mode (seen by the Geolocator that answers)
    and answers as the Geolocator does with it, whatever the bundle's own mode."""
    files = [str(photos / "good0.jpg"), str(photos / "good1.jpg")]
    geo = Geolocator(bundle)
    items = [Item(f, [f]) for f in files]
    seen = []
    predict_items = Geolocator.predict_items

    def spy(self, *args, **kwargs):
        seen.append(self.refine.guess)
        return predict_items(self, *args, **kwargs)

    monkeypatch.setattr(Geolocator, "predict_items", spy)
    for mode in GUESSES:
        code, out, _ = run_cli(capsys, "--bundle", str(bundle), "--format", "json", "--guess", mode, *files)
        assert code == 0 and seen[-1] == mode
        geo.refine = geo.refine_as(mode)
        expected = [v for e in predict_items(geo, items) for v in (e["lat"], e["lon"])]
        assert [v for r in json.loads(out) for v in (r["lat"], r["lon"])] == pytest.approx(expected), mode
    run_cli(capsys, "--bundle", str(bundle), "--format", "json", *files)
    assert seen[-1] == Geolocator(bundle).refine.guess  # no flag: the bundle's own mode
    with pytest.raises(SystemExit):
        main(["predict", "--bundle", str(bundle), "--guess", "centroid", files[0]])


def test_csv_geojson_and_table(bundle, photos, capsys):
    good = [str(photos / "good0.jpg"), str(photos / "good1.jpg")]
    code, out, _ = run_cli(capsys, "--bundle", str(bundle), "--format", "csv", *good)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 2 and {"input", "lat", "lon", "country", "radius_km"} <= set(rows[0])
    code, out, _ = run_cli(capsys, "--bundle", str(bundle), "--format", "geojson", *good)
    fc = json.loads(out)
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2
    assert fc["features"][0]["geometry"]["type"] == "Point" and len(fc["features"][0]["geometry"]["coordinates"]) == 2
    code, out, _ = run_cli(capsys, "--bundle", str(bundle), str(photos))  # a folder, as a table
    assert code == 1 and "good2.jpg" in out and "error" in out


def test_missing_bundle_is_one_clear_message(tmp_path, photos, capsys):
    code, out, err = run_cli(capsys, "--bundle", str(tmp_path / "none"), str(photos / "good0.jpg"))
    assert code == 2 and "no such bundle folder" in err and out == ""


def test_a_group_of_identical_images_equals_one_image(bundle, photos):
    geo = Geolocator(bundle)
    one = geo.predict_items([Item("one", [photos / "good0.jpg"])])[0]
    group = geo.predict_items([Item("group", [photos / "good0.jpg"] * 3)])[0]
    assert group["views"] == 3
    assert (one["lat"], one["lon"]) == (group["lat"], group["lon"])
    assert [c["probability"] for c in one["top_cells"]] == [c["probability"] for c in group["top_cells"]]


def test_rollout_highlights_a_planted_patch():
    tokens, planted = 17, 5  # class token + 16 patches
    attentions = []
    for _ in range(4):
        a = torch.full((1, 2, tokens, tokens), 1.0)
        a[:, :, :, planted + 1] = 40.0  # every token attends mostly to the planted patch
        attentions.append(a / a.sum(-1, keepdim=True))
    heat = attention_rollout(attentions)[0]
    assert torch.isclose(heat.sum(), torch.tensor(1.0)) and int(heat.argmax()) == planted


def test_explain_map_sums_to_one(bundle, photos):
    geo = Geolocator(bundle)
    heat = explain(geo.model, geo.spec, np.asarray(Image.open(photos / "good0.jpg")))
    v = geo.model.spec.vision_config
    side = v["image_size"] // v["patch_size"]  # one cell a patch (tiny: 64 / 16)
    assert heat.shape == (side, side) and np.isclose(heat.sum(), 1.0) and (heat >= 0).all()
