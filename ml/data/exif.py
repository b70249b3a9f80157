"""Geotagged photos as locations: the EXIF GPS reader behind ``raw_locations.source: exif_folder``.

Every photo under the folder (recursively; ``.jpg .jpeg .png .tif .tiff .heic .heif``, any
case; other files are not photos and are counted as skipped) is read with Pillow (HEIC/HEIF
through pillow-heif). From its EXIF:

- latitude / longitude: GPSLatitude / GPSLongitude as degrees, minutes, seconds (rationals)
  with GPSLatitudeRef N/S and GPSLongitudeRef E/W. A component written as 0/0 (some cameras
  do, for "unused") counts as 0; a non-zero numerator over a zero denominator makes the
  coordinate unreadable. A missing or empty reference is rejected: guessing the hemisphere
  would put the photo on the wrong side of the Earth.
- capture time: DateTimeOriginal (the camera's local clock) into ``captured_at``; the GPS
  date/time (UTC) is kept beside it, and used when DateTimeOriginal is missing.
- camera heading: GPSImgDirection (degrees; its reference, true or magnetic north, is kept).
- orientation: the EXIF Orientation tag (applied when the image is loaded).

Each photo is one location with one view, unless ``group_distance_m`` and ``group_minutes`` are
both positive: then, in capture-time order, a photo joins the open group when it was taken
within ``group_minutes`` of the group's previous photo and within ``group_distance_m`` of the
group's first photo; the group is one location (at its photos' mean position, id of its first
photo) whose views are its photos. Photos without a capture time are never grouped.

A photo without usable GPS is rejected with its reason: ``unreadable file``, ``no EXIF``,
``EXIF without a GPS block``, ``GPS block without coordinates``, ``GPS reference missing``,
``GPS coordinate unreadable``, ``coordinates out of range``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.images import HEIF  # noqa: F401  (importing registers the HEIC/HEIF opener)
from ml.geo.haversine import haversine_km

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".heic", ".heif"}
GPS_IFD, EXIF_IFD = 0x8825, 0x8769
ORIENTATION, DATETIME_ORIGINAL = 274, 36867
LAT_REF, LAT, LON_REF, LON, GPS_TIME, DIRECTION_REF, DIRECTION, GPS_DATE = 1, 2, 3, 4, 7, 16, 17, 29

EXIF_COLUMNS = ["input_row", "photo", "content_hash", "lat", "lon", "captured_at", "gps_time_utc", "heading", "heading_ref",
                "orientation", "camera"]


class ExifRejected(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def find_photos(folder: Path) -> tuple[list[Path], int]:
    """Photos under ``folder`` (sorted, recursive) and the number of other files skipped."""
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder; set raw_locations.path to your folder of geotagged photos")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    photos = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    return photos, len(files) - len(photos)


def _number(value, what: str, name: str) -> float:
    """A rational (IFDRational, a (num, den) pair, or a number) as a float; 0/0 is 0."""
    num = getattr(value, "numerator", None)
    den = getattr(value, "denominator", None)
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
    if den is not None and num is not None:
        if den == 0:
            if num == 0:
                return 0.0
            raise ExifRejected("GPS coordinate unreadable", f"{name}: {what} {num}/0 has a zero denominator")
        return float(num) / float(den)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ExifRejected("GPS coordinate unreadable", f"{name}: {what} {value!r} is not a number") from None
    if not math.isfinite(out):
        raise ExifRejected("GPS coordinate unreadable", f"{name}: {what} {value!r} is not finite")
    return out


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value or "").strip("\x00 ").strip()


def _dms(gps, tag: int, ref_tag: int, name: str, signs: dict[str, int]) -> float:
    value = gps.get(tag)
    if value is None or (isinstance(value, str | bytes | tuple | list) and len(value) == 0):
        raise ExifRejected("GPS block without coordinates", f"no GPS {name}")
    parts = list(value) if isinstance(value, tuple | list) else [value]
    if len(parts) > 3:
        raise ExifRejected("GPS coordinate unreadable", f"GPS {name} has {len(parts)} components, expected 3")
    what = ("degrees", "minutes", "seconds")
    d = sum(_number(p, what[i], f"GPS {name}") / 60**i for i, p in enumerate(parts))
    ref = _text(gps.get(ref_tag)).upper()[:1]
    if ref not in signs:
        raise ExifRejected(
            "GPS reference missing",
            f"GPS {name} reference is {_text(gps.get(ref_tag))!r}; expected one of {'/'.join(signs)}",
        )
    return signs[ref] * d


def _exif_time(text) -> pd.Timestamp | None:
    t = _text(text)
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y:%m:%d"):
        try:
            return pd.Timestamp(datetime.strptime(t, fmt))
        except ValueError:
            continue
    return None


def _gps_time(gps) -> pd.Timestamp | None:
    date = _exif_time(gps.get(GPS_DATE))
    if date is None:
        return None
    try:
        h, m, s = (_number(v, "time", "GPS time") for v in gps.get(GPS_TIME, (0, 0, 0)))
    except (ExifRejected, TypeError, ValueError):
        return date
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 61):
        return date
    return date + pd.Timedelta(hours=h, minutes=m, seconds=int(s))


@dataclass
class PhotoGps:
    lat: float
    lon: float
    captured_at: pd.Timestamp | None
    gps_time_utc: pd.Timestamp | None
    heading: float
    heading_ref: str
    orientation: int
    camera: str


def read_photo_gps(path: Path) -> PhotoGps:
    """The photo's GPS position, times, heading and orientation, or ``ExifRejected``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            has_block = bool(im.info.get("exif")) or (im.format == "TIFF" and len(exif) > 0)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ExifRejected("unreadable file", f"{type(e).__name__}: {e}") from None
    if not has_block:
        raise ExifRejected("no EXIF", "the file has no EXIF segment")
    gps = exif.get_ifd(GPS_IFD)
    if not gps:
        raise ExifRejected("EXIF without a GPS block", "no GPS IFD in the EXIF")
    if gps.get(LAT) is None and gps.get(LON) is None:
        raise ExifRejected("GPS block without coordinates", f"GPS tags present: {sorted(gps)}")
    lat = _dms(gps, LAT, LAT_REF, "latitude", {"N": 1, "S": -1})
    lon = _dms(gps, LON, LON_REF, "longitude", {"E": 1, "W": -1})
    if abs(lat) > 90 or abs(lon) > 180:
        raise ExifRejected("coordinates out of range", f"lat {lat:.6f}, lon {lon:.6f} (|lat| <= 90, |lon| <= 180)")
    heading = float("nan")
    if gps.get(DIRECTION) is not None:
        try:
            heading = _number(gps[DIRECTION], "direction", "GPS image direction") % 360.0
        except ExifRejected:
            pass  # a broken heading is not a reason to lose the photo
    detail = exif.get_ifd(EXIF_IFD)
    make, model = _text(exif.get(271)), _text(exif.get(272))
    gps_time = _gps_time(gps)
    taken = _exif_time(detail.get(DATETIME_ORIGINAL)) or gps_time
    return PhotoGps(
        lat=lat,
        lon=lon,
        captured_at=taken,
        gps_time_utc=gps_time,
        heading=heading,
        heading_ref=_text(gps.get(DIRECTION_REF)),
        orientation=int(exif.get(ORIENTATION, 1) or 1),
        camera=" ".join(x for x in (make, model) if x),
    )


def group_photos(table: pd.DataFrame, distance_m: float, minutes: float) -> np.ndarray:
    """A group number per row (rows: lat, lon, captured_at); the rule in the module docstring."""
    group = np.arange(len(table))
    if distance_m <= 0 or minutes <= 0 or len(table) == 0:
        return group
    t = pd.to_datetime(table["captured_at"])
    order = np.argsort(t.to_numpy(), kind="stable")
    lat, lon = table["lat"].to_numpy(float), table["lon"].to_numpy(float)
    first = prev = None
    for i in order:
        if pd.isna(t.iloc[i]):
            first = prev = None
            continue
        if (
            prev is not None
            and (t.iloc[i] - t.iloc[prev]) <= pd.Timedelta(minutes=minutes)
            and haversine_km(lat[i], lon[i], lat[first], lon[first]) * 1000 <= distance_m
        ):
            group[i] = group[first]
        else:
            first = i
        prev = i
    return group


def read_exif_folder(folder: Path, distance_m: float, minutes: float):
    """(rows for the shared row checks, EXIF rejections, the EXIF table, photos, skipped files).

    Rows have the manifest's columns (id, lat, lon, image_paths, heading, captured_at) and
    ``input_row`` = the photo's index in the sorted list of photos (a group's first photo)."""
    folder = Path(folder)
    photos, skipped = find_photos(folder)
    read, rejected = [], []
    for i, p in enumerate(photos):
        rel = p.relative_to(folder).as_posix()
        try:
            g = read_photo_gps(p)
        except ExifRejected as e:
            rejected.append({"input_row": i, "reason": e.reason, "detail": f"{rel}: {e.detail}", "photo": str(p)})
            continue
        digest = hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()  # edited pixels rerun the chain
        read.append({"input_row": i, "photo": str(p), "content_hash": digest, "id": rel} | g.__dict__)
    exif = pd.DataFrame(read, columns=["id", *EXIF_COLUMNS])
    for col in ("captured_at", "gps_time_utc"):
        exif[col] = pd.to_datetime(exif[col]).astype("datetime64[us]")
    if len(exif):
        groups = group_photos(exif, distance_m, minutes)
    else:
        groups = np.zeros(0, dtype=int)
    rows = []
    for g in pd.unique(groups):
        part = exif[groups == g]
        first = part.iloc[0]
        captured = first["captured_at"]
        rows.append(
            {
                "id": first["id"],
                "lat": float(part["lat"].mean()),
                "lon": float(part["lon"].mean()),
                "image_paths": ";".join(part["photo"]),
                "heading": first["heading"],
                "captured_at": None if captured is None or pd.isna(captured) else pd.Timestamp(captured).isoformat(),
                "input_row": int(first["input_row"]),
                "photos": len(part),
            }
        )
    grouped = pd.DataFrame(rows, columns=["id", "lat", "lon", "image_paths", "heading", "captured_at", "input_row",
                                          "photos"])
    exif["group"] = groups
    return grouped, pd.DataFrame(rejected, columns=["input_row", "reason", "detail", "photo"]), exif, photos, skipped
