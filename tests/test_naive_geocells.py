"""Naive geocells: count and balance of the k-d boxes, the pipeline switch, and the oracle on a
constructed case with a known answer."""

import numpy as np
import pandas as pd
import pytest

from ml.eval.oracle import oracle_lines
from ml.geo.cells import check_geocells, oracle_distances
from ml.geo.haversine import haversine_km
from ml.geo.naive import build_naive_geocells


def _points(lat, lon, country=None):
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(len(lat))], "lat": lat, "lon": lon})
    if country is not None:
        frame["country"] = country
    return frame


def test_count_and_balance():
    rng = np.random.default_rng(3)
    lat = np.concatenate([rng.normal(48, 2, 700), rng.normal(-33, 1, 250), rng.uniform(-60, 70, 50)])
    lon = np.concatenate([rng.normal(5, 3, 700), rng.normal(151, 1, 250), rng.uniform(-180, 180, 50)])
    cells = build_naive_geocells(_points(lat, lon), 37)
    sizes = cells.cells["n_points"].to_numpy()
    assert len(cells.cells) == 37 and sizes.sum() == 1000
    assert sizes.max() <= 2 * sizes.min() + 1  # splits of the largest box at its median
    assert (np.bincount(cells.assignments["cell_id"], minlength=37) == sizes).all()
    assert check_geocells(cells, None, None) == {
        "points_without_cell": 0,
        "points_in_several_cells": 0,
        "overlapping_cell_pairs": 0,
        "lookup_disagrees_with_assignment": 0,
    }


def test_identical_coordinates_stay_together():
    cells = build_naive_geocells(_points([10.0] * 6 + [20.0], [5.0] * 6 + [5.0]), 4)
    assert sorted(cells.cells["n_points"]) == [1, 6]  # the 6 copies cannot be split: 2 boxes, not 4


def test_oracle_known_answer():
    # The globe's longer side (on the ground) is longitude: the cut is at lon 1, halfway
    # between 0 and 2. Each box's centroid is the spherical mean of (0, x) and (10, x): (5, x).
    cells = build_naive_geocells(_points([0.0, 10.0, 0.0, 10.0], [0.0, 0.0, 2.0, 2.0], ["A", "A", "B", "B"]), 2)
    assert set(cells.cells["country"]) == {"A", "B"}
    d = oracle_distances(cells, np.array([5.0, 5.0, 7.0]), np.array([0.0, 0.5, 1.9]))
    assert d[0] == pytest.approx(0.0, abs=1e-6)
    assert d[1] == pytest.approx(haversine_km(5.0, 0.5, 5.0, 0.0))
    assert d[1] == pytest.approx(2 * np.pi * 6371 * 0.5 / 360 * np.cos(np.radians(5)), rel=1e-3)
    assert d[2] == pytest.approx(haversine_km(7.0, 1.9, 5.0, 2.0))


def test_oracle_lines_print_both_builders():
    row = {
        "within_1km": 1.0,
        "within_25km": 2.0,
        "within_200km": 3.0,
        "within_750km": 4.0,
        "within_2500km": 5.0,
        "median_km": 6.0,
    }
    lines = oracle_lines({"30/60": {"n_cells": 9, "naive_cells": 9, "semantic": row, "naive": row}})
    assert len(lines) == 3 and "semantic" in lines[1] and "naive" in lines[2]


def test_the_naive_builder_runs_through_the_pipeline(tmp_path):
    import dagster as dg

    from assets.resources import RoostResource
    from orchestration.definitions import ASSETS
    from tests.conftest import make_root

    root = make_root(tmp_path, overrides={"geocells": {"builder": "naive", "naive_cells": 12}})
    selection = ["raw_locations", "enriched_locations", "geocells"]
    result = dg.materialize(ASSETS, selection=selection, resources={"roost": RoostResource(root=str(root))})
    assert result.success
    meta = result.asset_materializations_for_node("geocells")[0].metadata
    assert meta["builder"].value == "naive" and meta["cells"].value == 12
