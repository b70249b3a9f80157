"""Asset-level tests on the shared smoke materialization."""

from ml.paths import Paths
from ml.store import read_table


def test_raw_locations_smoke(smoke_chain):
    root, result = smoke_chain
    db = Paths(root).asset_db("raw_locations")
    locations, rejected = read_table(db, "locations"), read_table(db, "rejected")
    meta = result.asset_materializations_for_node("raw_locations")[0].metadata
    assert meta["input_rows"].value == 300 == len(locations) + len(rejected)
    assert meta["accepted"].value == len(locations)
    assert locations["id"].is_unique
