"""location_images through Dagster: the smoke chain (terrain) and a manifest of files."""

import dagster as dg
import numpy as np
import pandas as pd
from PIL import Image

from assets.resources import RoostResource
from ml.data.images import ImageStore
from ml.paths import Paths
from ml.store import read_table
from orchestration.definitions import ASSETS
from tests.conftest import make_root


def test_location_images_smoke(smoke_chain):
    root, result = smoke_chain
    paths = Paths(root)
    db = paths.asset_db("location_images")
    images, rejected = read_table(db, "images"), read_table(db, "rejected")
    locations = read_table(paths.asset_db("enriched_locations"), "locations")
    meta = result.asset_materializations_for_node("location_images")[0].metadata
    assert meta["views_expected"].value == 4 * len(locations) == len(images) + len(rejected)
    assert (images.groupby("location_id").size() == 4).all()
    assert sorted(images["heading"].unique()) == [0, 90, 180, 270]
    store = ImageStore(paths.shards)
    view = store.read(images["key"].iloc[0])
    assert view.shape == (64, 64, 3) and view.dtype == np.uint8
    assert meta["contact_sheet"].value.startswith("![sample views](data:image/png;base64,")


def test_files_source_keeps_good_views_and_rejects_bad_ones(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (120, 80), (30, 120, 200)).save(photos / "a1.jpg")
    Image.new("L", (50, 50), 90).save(photos / "a2.png")
    (photos / "a3.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (photos / "b1.jpg").write_bytes(b"GIF89a nonsense that is not a gif")
    (photos / "c1.txt").write_text("not an image")
    pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "lat": [48.85, 51.5, 40.4],
            "lon": [2.35, -0.12, -3.7],
            "image_paths": ["a1.jpg;a2.png;a3.jpg", "b1.jpg", "c1.txt"],
        }
    ).to_csv(photos / "manifest.csv", index=False)
    root = make_root(
        tmp_path / "project",
        overrides={
            "raw_locations": {"source": "manifest", "path": str(photos / "manifest.csv")},
            "location_images": {"source": "files"},
        },
    )
    result = dg.materialize(ASSETS[:3], resources={"roost": RoostResource(root=str(root))})
    assert result.success
    db = Paths(root).asset_db("location_images")
    images, rejected = read_table(db, "images"), read_table(db, "rejected")
    lost = read_table(db, "rejected_locations")
    assert sorted(images["original"].map(lambda p: p.rsplit("/", 1)[-1])) == ["a1.jpg", "a2.png"]
    reasons = dict(zip(rejected["original"].map(lambda p: p.rsplit("/", 1)[-1]), rejected["reason"]))
    assert reasons == {
        "a3.jpg": "corrupt or truncated",
        "b1.jpg": "corrupt or truncated",
        "c1.txt": "unsupported or unrecognised format",
    }
    assert set(lost["location_id"]) == {"b", "c"}
    assert len(images) + len(rejected) == 5
