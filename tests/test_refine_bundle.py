"""Prototype refinement on constructed cases, prototypes on the smoke chain, the bundle."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ml.bundle import BundleError, verify_bundle
from ml.geo.haversine import haversine_km
from ml.paths import Paths
from ml.refine.prototypes import Prototypes, build_prototypes
from ml.refine.refine import CellGeometry, anchor_cells, refine_guess
from ml.settings import PrototypesConfig, RefineConfig

CENTROIDS = np.array([[48.85, 2.35], [51.5, -0.12], [40.4, -3.7]])  # Paris, London, Madrid
CELLS = CellGeometry.of(CENTROIDS, ["FRA", "GBR", "ESP"])


def protos():
    # Cell 0 has two prototypes (Lille-ish and Lyon-ish), cell 1 one (Manchester-ish).
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], np.float32)
    return Prototypes(emb, np.array([50.6, 45.75, 53.48]), np.array([3.06, 4.84, -2.24]), np.array([0, 0, 1]), [])


def cfg(**kw):
    base = {"enabled": True, "top_k": 5, "temperature": 1.0, "max_move_km": 1000.0, "guess": "top_cell"}
    return RefineConfig(**(base | kw))


def test_picks_the_nearest_prototype_in_the_top_cell():
    probs = np.array([[0.9, 0.08, 0.02]])
    g = refine_guess(probs, np.array([[0.1, 0.9]]), CELLS, protos(), cfg())
    assert (g.lat[0], g.lon[0]) == (45.75, 4.84) and g.prototype[0] == 1
    g = refine_guess(probs, np.array([[0.9, 0.1]]), CELLS, protos(), cfg())
    assert g.prototype[0] == 0


def test_a_close_prototype_in_a_lower_cell_can_win():
    probs = np.array([[0.5, 0.45, 0.05]])
    g = refine_guess(probs, np.array([[5.0, 5.0]]), CELLS, protos(), cfg(temperature=0.1))
    assert g.prototype[0] == 2  # Manchester's prototype matches exactly, its cell nearly as likely


def test_k1_chooses_within_the_top_cell():
    probs = np.array([[0.5, 0.45, 0.05]])
    g = refine_guess(probs, np.array([[5.0, 5.0]]), CELLS, protos(), cfg(top_k=1, temperature=0.1))
    assert g.prototype[0] in (0, 1) and g.top_cells.shape == (1, 1)


def test_the_cap_cancels_a_far_move():
    probs = np.array([[0.9, 0.08, 0.02]])
    far = haversine_km(48.85, 2.35, 45.75, 4.84)
    g = refine_guess(probs, np.array([[0.1, 0.9]]), CELLS, protos(), cfg(max_move_km=far - 1))
    assert g.cancelled[0] and (g.lat[0], g.lon[0]) == (48.85, 2.35) and g.prototype[0] == -1


def test_without_prototypes_the_centroid_stands():
    probs = np.array([[0.1, 0.7, 0.2]])
    g = refine_guess(probs, np.array([[0.0, 0.0]]), CELLS, protos(), cfg(enabled=False))
    assert (g.lat[0], g.lon[0]) == (51.5, -0.12)


def test_build_prototypes_clusters_within_cells():
    rng = np.random.default_rng(0)
    a = rng.normal([48.0, 2.0], 0.05, (10, 2))
    b = rng.normal([45.0, 5.0], 0.05, (10, 2))
    pts = np.vstack([a, b, [[40.0, -3.0], [40.1, -3.1]]])
    cell = np.array([0] * 20 + [1, 1])
    emb = np.vstack([np.ones((10, 4)), -np.ones((10, 4)), np.zeros((2, 4))]).astype(np.float32)
    ids = np.array([f"p{i}" for i in range(22)])
    p, _ = build_prototypes(ids, pts[:, 0], pts[:, 1], cell, emb, PrototypesConfig(3, 0.15, 1, 64))
    assert sorted(p.cell.tolist()) == [0, 0, 1]  # two clusters in cell 0; cell 1 too small: one
    first = np.flatnonzero(p.cell == 0)
    assert sorted(np.round(p.embeddings[first, 0]).tolist()) == [-1.0, 1.0]
    groups = [{int(i[1:]) < 10 for i in m} for m in p.members]
    assert all(len(g) == 1 for g in groups)  # each prototype lies within one true cluster
    assert sorted(len(m) for m in p.members)[0] == 2 and all(len(m) >= 3 for m in p.members[:2])


def test_prototypes_and_bundle_smoke(smoke_chain, tmp_path):
    root, result = smoke_chain
    paths = Paths(root)
    assert result.asset_materializations_for_node("prototypes")[0].metadata["prototypes"].value > 0
    bundle = paths.bundle
    manifest = verify_bundle(bundle)
    assert manifest["schema_version"] == 1 and "model/model.safetensors" in manifest["files"]
    assert not list(bundle.rglob("*.pkl")) and not list(bundle.rglob("*.pt"))
    assert "terrain renderings" in (bundle / "MODEL_CARD.md").read_text()

    tampered = shutil.copytree(bundle, tmp_path / "tampered")
    with open(tampered / "geocells.parquet", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="geocells.parquet does not match its checksum"):
        verify_bundle(tampered)

    future = shutil.copytree(bundle, tmp_path / "future")
    m = json.loads((future / "manifest.json").read_text())
    (future / "manifest.json").write_text(json.dumps(m | {"schema_version": 99}))
    with pytest.raises(BundleError, match="schema version 99 is not supported"):
        verify_bundle(future)
    with pytest.raises(BundleError, match="no such bundle folder"):
        verify_bundle(tmp_path / "nothing")


def test_the_anchors_known_answers():
    """Three cells on the equator at 0, 5 and 10 degrees east with probabilities 0.36, 0.28,
    0.36: the top cell is the first (a tie goes to the lowest id), the probability-weighted
    distance is smallest at the middle one (3.6 x 5 degrees against 5.0 x 5 at either end)."""
    line = CellGeometry.of(np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 10.0]]), ["A", "A", "A"])
    probs = np.array([[0.36, 0.28, 0.36]])
    assert anchor_cells(probs, line, "top_cell")[0].tolist() == [0]
    assert anchor_cells(probs, line, "min_expected_distance")[0].tolist() == [1]
    # Country A holds cells 0-2, B cells 3-4.
    cells = CellGeometry.of(np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 10.0], [0.0, 11.0]]), list("AAABB"))
    b_wins = np.array([[0.2, 0.2, 0.05, 0.3, 0.25]])  # A 0.45, B 0.55
    assert anchor_cells(b_wins, cells, "country_first")[0].tolist() == [3]
    a_wins = np.array([[0.25, 0.2, 0.2, 0.3, 0.05]])  # A 0.65 although the top cell (3) is B's
    anchor, eligible = anchor_cells(a_wins, cells, "country_first")
    assert anchor.tolist() == [0] and eligible.tolist() == [[True, True, True, False, False]]
    with pytest.raises(ValueError, match="refine.guess"):
        anchor_cells(a_wins, cells, "nearest")


def test_country_first_refines_within_the_country():
    """Manchester's prototype matches the embedding exactly and London is the top cell, but
    the two other cells, here labelled as one country, hold more probability together: the
    guess stays in that country (a prototype of cell 0; cell 2 has none)."""
    cells = CellGeometry.of(CENTROIDS, ["FRA", "GBR", "FRA"])
    probs = np.array([[0.3, 0.4, 0.3]])
    g = refine_guess(probs, np.array([[5.0, 5.0]]), cells, protos(), cfg(temperature=0.1))
    assert g.prototype[0] == 2
    g = refine_guess(probs, np.array([[5.0, 5.0]]), cells, protos(), cfg(temperature=0.1, guess="country_first"))
    assert g.prototype[0] in (0, 1) and g.top_cells[0].tolist()[:2] == [0, 2]


def test_admin_tables_read_without_geopandas_equal_geopandas_reading():
    """What naming a place reads (pyarrow + shapely, no geopandas import on ``roost predict``'s
    path) is geopandas' reading of the same GeoParquet files: the same columns, values and shapes."""
    import geopandas as gpd
    import shapely

    from ml.bundle import plain_geoparquet
    from tests.conftest import REPO

    for name in ("admin0_naturalearth_10m.parquet", "admin1_naturalearth_10m.parquet"):
        path = REPO / "data" / "reference" / name
        plain, reference = plain_geoparquet(path), gpd.read_parquet(path)
        assert list(plain.columns) == list(reference.columns)
        assert plain.drop(columns="geometry").equals(pd.DataFrame(reference.drop(columns="geometry")))
        assert shapely.equals(plain["geometry"].to_numpy(), reference.geometry.to_numpy()).all()
