"""raw_locations sources: every row accepted or rejected with the right reason."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.data.sources import SourceError, load_raw_locations, read_table_file, validate_rows
from ml.settings import RawLocationsConfig

REPO = Path(__file__).resolve().parents[1]

# (lat, lon, id, image, expected reason or None)
CASES = [
    ("48.8566", "2.3522", "paris", "", None),
    ("-33.86", "151.2", "sydney", "photo.jpg", None),
    ("abc", "2", "s1", "", "lat is not a number"),
    ("", "2", "s2", "", "lat is missing or NaN"),
    ("NaN", "2", "s3", "", "lat is missing or NaN"),
    ("inf", "2", "s4", "", "lat is infinite"),
    ("-inf", "2", "s5", "", "lat is infinite"),
    ("91", "2", "s6", "", "lat out of range [-90, 90]"),
    ("-90.0001", "2", "s7", "", "lat out of range [-90, 90]"),
    ("10", "-181", "s8", "", "lon out of range [-180, 180]"),
    ("10", "180.5", "s9", "", "lon out of range [-180, 180]"),
    ("10", "x1", "s10", "", "lon is not a number"),
    ("10", "180", "dateline", "", None),
    ("11", "12", "paris", "", "duplicate id"),
    ("12", "13", "m1", "missing.jpg", "image file not found"),
    ("13", "14", "m2", "empty.jpg", "image file is empty"),
    ("90", "-180", "pole", "", None),
    ("14", "15", "NA", "", None),
]


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8 not checked here")
    (tmp_path / "empty.jpg").write_bytes(b"")
    frame = pd.DataFrame(CASES, columns=["lat", "lon", "id", "image_path", "expected"])
    path = tmp_path / "manifest.csv"
    frame.drop(columns="expected").to_csv(path, index=False)
    return path


def test_fuzzed_manifest_reconciles_with_right_reasons(manifest, tmp_path):
    cfg = RawLocationsConfig(
        source="manifest", path=str(manifest), n_locations=0, seed=0, group_distance_m=0, group_minutes=0
    )
    result = load_raw_locations(cfg, manifest, tmp_path)
    assert len(result.locations) + len(result.rejected) == result.n_input == len(CASES)
    got = dict(zip(result.rejected["input_row"], result.rejected["reason"]))
    for row, case in enumerate(CASES):
        assert got.get(row) == case[4], (row, case)
    accepted = result.locations.set_index("id")
    assert accepted.loc["dateline", "lon"] == -180.0  # 180 normalised
    assert accepted.loc["sydney", "image_paths"] == ["photo.jpg"]
    assert "NA" in accepted.index  # Namibia's code is not a missing value
    # The rejected row keeps its original content.
    assert '"lat": "abc"' in result.rejected.set_index("input_row").loc[2, "row_json"]


def test_parquet_manifest_with_numeric_nan_and_inf(tmp_path):
    path = tmp_path / "m.parquet"
    pd.DataFrame({"latitude": [1.0, math.nan, math.inf, 45.0], "longitude": [1.0, 2.0, 3.0, 200.0]}).to_parquet(path)
    cfg = RawLocationsConfig(
        source="manifest", path=str(path), n_locations=0, seed=0, group_distance_m=0, group_minutes=0
    )
    result = load_raw_locations(cfg, path, tmp_path)
    assert list(result.locations["id"]) == ["row-0"]
    assert list(result.rejected["reason"]) == [
        "lat is missing or NaN",
        "lat is infinite",
        "lon out of range [-180, 180]",
    ]


def test_optional_columns_parse_and_reject(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("lat,lon,heading,captured_at\n1,1,90,2021-07-01T12:00:00\n2,2,north,\n3,3,,yesterday\n4,4,,\n")
    result = validate_rows(read_table_file(path), "manifest", tmp_path, tmp_path)
    assert list(result.rejected["reason"]) == ["heading is not a finite number", "captured_at is not a date"]
    first = result.locations.iloc[0]
    assert first["heading"] == 90.0 and first["captured_at"] == pd.Timestamp("2021-07-01T12:00:00")
    assert np.isnan(result.locations.iloc[1]["heading"]) and pd.isna(result.locations.iloc[1]["captured_at"])


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        ("", "the file is empty"),
        ("lat,longitude_typo\n1,2\n", "missing required column(s) lon"),
    ],
)
def test_unreadable_manifest_stops_with_file_and_column(tmp_path, content, message):
    path = tmp_path / "m.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SourceError) as e:
        read_table_file(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_header_only_manifest_has_no_rows(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("lat,lon\n")
    result = validate_rows(read_table_file(path), "manifest", tmp_path, tmp_path)
    assert result.n_input == 0 and result.locations.empty and result.rejected.empty


def test_default_source_is_a_seeded_sample_of_the_gallery(tmp_path):
    gallery = REPO / "data" / "reference" / "mp16_gallery_100k.csv"
    cfg = RawLocationsConfig(
        source="default", path=str(gallery), n_locations=200, seed=3, group_distance_m=0, group_minutes=0
    )
    a = load_raw_locations(cfg, gallery, REPO)
    b = load_raw_locations(cfg, gallery, REPO)
    assert len(a.locations) + len(a.rejected) == 200
    assert a.locations["id"].tolist() == b.locations["id"].tolist()
    assert a.locations["id"].str.startswith("mp16-").all()
    other = load_raw_locations(RawLocationsConfig("default", str(gallery), 200, 4, 0, 0), gallery, REPO)
    assert a.locations["id"].tolist() != other.locations["id"].tolist()
