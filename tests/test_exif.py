"""raw_locations source exif_folder: the real camera files of ../shared/testdata/exif, generated
edge cases, grouping, and geotagged photos trained on end to end."""

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational as R

from assets.resources import RoostResource
from ml.data.exif import read_photo_gps
from ml.data.images import HEIF
from ml.data.sources import load_raw_locations
from ml.paths import Paths
from ml.settings import RawLocationsConfig
from ml.store import read_table
from orchestration.definitions import ASSETS
from tests.conftest import REPO, make_root

SAMPLES = REPO.parent / "shared" / "testdata" / "exif"


def cfg(folder: Path, distance_m: float = 0, minutes: float = 0) -> RawLocationsConfig:
    return RawLocationsConfig("exif_folder", str(folder), 0, 0, distance_m, minutes)


def dms(value: float) -> tuple:
    d = int(value)
    m = int((value - d) * 60)
    s = round(((value - d) * 60 - m) * 60 * 1000)
    return (R(d, 1), R(m, 1), R(s, 1000))


def photo(
    path: Path,
    lat=None,
    lon=None,
    *,
    lat_ref=None,
    lon_ref=None,
    lat_dms=None,
    taken=None,
    direction=None,
    size=(64, 48),
    colour=(90, 140, 60),
):
    """A JPEG/PNG/HEIC with the GPS tags given (None: tag absent)."""
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    if lat is not None or lat_dms is not None:
        gps[1] = lat_ref if lat_ref is not None else ("N" if lat >= 0 else "S")
        gps[2] = lat_dms or dms(abs(lat))
    if lon is not None:
        gps[3] = lon_ref if lon_ref is not None else ("E" if lon >= 0 else "W")
        gps[4] = dms(abs(lon))
    if direction is not None:
        gps[16], gps[17] = "T", R(int(direction * 100), 100)
    if taken:
        exif.get_ifd(0x8769)[36867] = taken
    noise = np.random.default_rng(abs(hash(path.name)) % 2**32).integers(0, 60, (*size[::-1], 3))
    pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    return path


assert HEIF, "pillow-heif (a dependency) must register Pillow's HEIC/HEIF opener"


def test_real_camera_files():
    if not SAMPLES.exists():
        pytest.fail(f"{SAMPLES} missing: the tests need ../shared beside the repository")
    result = load_raw_locations(cfg(SAMPLES), SAMPLES, REPO)
    got = result.locations.set_index("id")
    expected = {
        "DSCN0010.jpg": (43.4674, 11.8851),
        "DSCN0042.jpg": (43.4645, 11.8815),
        "Kodak_CX7530.jpg": (-0.3713, 36.0564),
    }
    assert set(got.index) == set(expected)
    for name, (lat, lon) in expected.items():
        assert got.loc[name, "lat"] == pytest.approx(lat, abs=1e-4)
        assert got.loc[name, "lon"] == pytest.approx(lon, abs=1e-4)
    reasons = {
        json.loads(r)["photo"].rsplit("/", 1)[-1]: why
        for r, why in zip(result.rejected["row_json"], result.rejected["reason"])
    }
    assert reasons == {
        "Canon_40D.jpg": "GPS block without coordinates",
        "landscape_6.jpg": "EXIF without a GPS block",
        "no_exif.jpg": "EXIF without a GPS block",
        "image01137.jpg": "no EXIF",
    }
    assert len(result.locations) + len(result.rejected) == result.n_input == 7
    exif = result.tables["exif"].set_index(result.tables["exif"]["photo"].map(lambda p: p.rsplit("/", 1)[-1]))
    assert str(exif.loc["DSCN0010.jpg", "captured_at"]) == "2008-10-22 16:28:39"
    assert str(exif.loc["DSCN0010.jpg", "gps_time_utc"]) == "2008-10-23 14:27:07"
    assert str(got.loc["DSCN0010.jpg", "captured_at"]) == "2008-10-22 16:28:39"


def test_generated_edge_cases(tmp_path):
    folder = tmp_path / "photos"
    photo(folder / "sydney.jpg", -33.8568, 151.2153, taken="2024:01:02 10:00:00", direction=271.5)
    photo(folder / "nested" / "lima.png", -12.0464, -77.0428)
    photo(folder / "zero_over_zero.jpg", lat_dms=(R(33, 1), R(30, 1), R(0, 0)), lat=33.5, lon=-7.6)
    photo(folder / "five_over_zero.jpg", lat_dms=(R(33, 1), R(30, 1), R(5, 0)), lat=33.5, lon=-7.6)
    photo(folder / "empty_ref.jpg", 10.0, 10.0, lat_ref="")
    photo(folder / "out_of_range.jpg", lat_dms=(R(95, 1), R(0, 1), R(0, 1)), lat=95.0, lon=10.0)
    photo(folder / "no_gps.jpg", taken="2024:01:02 10:00:00")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not a photo")
    photo(folder / "phone.heic", 35.6586, 139.7454)  # written through pillow-heif
    result = load_raw_locations(cfg(folder), folder, tmp_path)
    got = result.locations.set_index("id")
    assert got.loc["sydney.jpg", ["lat", "lon"]].tolist() == pytest.approx([-33.8568, 151.2153], abs=1e-4)
    assert got.loc["sydney.jpg", "heading"] == pytest.approx(271.5)
    assert got.loc["nested/lima.png", ["lat", "lon"]].tolist() == pytest.approx([-12.0464, -77.0428], abs=1e-4)
    assert got.loc["zero_over_zero.jpg", "lat"] == pytest.approx(33.5)  # 0/0 seconds count as 0
    assert "phone.heic" in got.index  # pillow-heif is a dependency: HEIC must read
    reasons = dict(zip(result.rejected["detail"].str.split(":").str[0], result.rejected["reason"]))
    assert reasons == {
        "five_over_zero.jpg": "GPS coordinate unreadable",
        "empty_ref.jpg": "GPS reference missing",
        "out_of_range.jpg": "coordinates out of range",
        "no_gps.jpg": "EXIF without a GPS block",
        "broken.jpg": "unreadable file",
    }
    assert result.counts == {"photos": 9, "photos_in_locations": 4, "other_files_skipped": 1}
    assert "zero denominator" in result.rejected.set_index("reason").loc["GPS coordinate unreadable", "detail"]


def test_photos_close_in_time_and_space_group(tmp_path):
    folder = tmp_path / "trip"
    photo(folder / "a.jpg", 48.85800, 2.29450, taken="2024:05:01 12:00:00")
    photo(folder / "b.jpg", 48.85820, 2.29460, taken="2024:05:01 12:03:00")  # 24 m, 3 min later
    photo(folder / "c.jpg", 48.85830, 2.29470, taken="2024:05:01 14:00:00")  # close, 2 hours later
    photo(folder / "d.jpg", 48.86060, 2.33760, taken="2024:05:01 12:04:00")  # 3 km away
    photo(folder / "e.jpg", 48.85800, 2.29450)  # no capture time: never grouped
    one_each = load_raw_locations(cfg(folder), folder, tmp_path)
    assert len(one_each.locations) == 5
    grouped = load_raw_locations(cfg(folder, distance_m=100, minutes=10), folder, tmp_path)
    views = grouped.locations.set_index("id")["image_paths"].map(len).to_dict()
    assert views == {"a.jpg": 2, "c.jpg": 1, "d.jpg": 1, "e.jpg": 1}
    assert grouped.counts["photos_in_locations"] == 5


def test_read_photo_gps_west_and_south(tmp_path):
    g = read_photo_gps(photo(tmp_path / "p.jpg", -22.9519, -43.2105))
    assert (g.lat, g.lon) == pytest.approx((-22.9519, -43.2105), abs=1e-4)


PLACES = [
    (48.85, 2.35),
    (52.52, 13.40),
    (40.42, -3.70),
    (41.90, 12.50),
    (-33.87, 151.21),
    (35.68, 139.69),
    (-23.55, -46.63),
    (40.71, -74.01),
    (19.43, -99.13),
    (-1.29, 36.82),
]


def test_train_on_your_own_photos_end_to_end(tmp_path):
    """A folder of geotagged photos through the whole chain, as docs/your-data.md says."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "my_photos"
    for k, (lat, lon) in enumerate(PLACES):
        colour = tuple(int(c) for c in rng.integers(40, 200, 3))
        for j in range(12):
            jitter = rng.normal(0, 0.3, 2)
            photo(
                folder / f"place{k}" / f"IMG_{j:04d}.jpg",
                lat + jitter[0],
                lon + jitter[1],
                colour=colour,
                taken=f"2024:0{1 + j % 9}:1{k % 10} 1{j % 10}:00:00",
                size=(80, 60),
            )
    shutil.copy(SAMPLES / "no_exif.jpg", folder / "no_exif.jpg")
    root = make_root(
        tmp_path / "project",
        overrides={
            "raw_locations": {"source": "exif_folder", "path": str(folder)},
            "location_images": {"source": "files", "views": 1},
        },
    )
    result = dg.materialize(ASSETS, resources={"roost": RoostResource(root=str(root))})
    assert result.success
    paths = Paths(root)
    raw = read_table(paths.asset_db("raw_locations"), "locations")
    assert len(raw) == 120 and read_table(paths.asset_db("raw_locations"), "rejected")["reason"].tolist() == [
        "EXIF without a GPS block"
    ]
    enriched = read_table(paths.asset_db("enriched_locations"), "locations")
    offshore = read_table(paths.asset_db("enriched_locations"), "rejected")  # jittered into the sea
    assert len(enriched) + len(offshore) == 120 and len(enriched) >= 100
    images = read_table(paths.asset_db("location_images"), "images")
    assert len(images) == len(enriched)  # one photo, one view
    assert (paths.bundle / "manifest.json").exists()
    metrics = json.loads((paths.asset_dir("benchmark_report") / "metrics.json").read_text())
    assert metrics["holdout"]["n"] > 0
