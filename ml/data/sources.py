"""raw_locations: where the pipeline's locations come from, each input row accepted or rejected.

Sources (``raw_locations.source`` in params):

- ``default``: a seeded sample of the MP-16 gallery shipped in data/reference (where people
  take photos), the embedded default.
- ``exif_folder``: a folder of geotagged photos (recursively), one location per photo or per
  group of photos taken close in time and space (``group_distance_m``, ``group_minutes``); see
  ``ml.data.exif``. Counts reconcile per photo: photos in locations + rejected photos = photos.
- ``manifest``: a CSV or Parquet file with columns ``lat`` and ``lon`` and optional ``id``,
  ``image_path`` (one file) or ``image_paths`` (several, separated by ``;``), ``heading``
  (degrees, clockwise from north) and ``captured_at`` (an ISO date/time). Relative image paths
  are relative to the manifest's folder.

Nothing is dropped silently: every input row ends in ``locations`` or in ``rejected`` with a
reason, and ``len(locations) + len(rejected) == input rows``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from ml.data.exif import read_exif_folder
from ml.settings import RawLocationsConfig

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("lat", "lon")
COLUMN_ALIASES = {"latitude": "lat", "longitude": "lon", "lng": "lon"}
OPTIONAL_COLUMNS = ("id", "image_path", "image_paths", "heading", "captured_at")

LOCATION_COLUMNS = ["id", "lat", "lon", "source", "image_paths", "heading", "captured_at", "input_row"]
REJECTED_COLUMNS = ["input_row", "reason", "detail", "row_json"]


class SourceError(ValueError):
    """The input as a whole cannot be read: a missing file or column, an empty file."""


@dataclass
class SourceResult:
    locations: pd.DataFrame
    rejected: pd.DataFrame
    n_input: int
    tables: dict = field(default_factory=dict)  # further tables to store (exif_folder: the EXIF read)
    counts: dict = field(default_factory=dict)  # source-specific counts for the asset's metadata

    def reason_counts(self) -> dict[str, int]:
        """Rejections per reason (duplicates, whose reasons name what they repeat, as one)."""
        reasons = self.rejected["reason"].astype(str)
        reasons = reasons.where(~reasons.str.startswith("duplicate of "), "duplicate of an earlier location")
        return {str(k): int(v) for k, v in reasons.value_counts().items()}


def load_raw_locations(cfg: RawLocationsConfig, path: Path, root: Path) -> SourceResult:
    """Read the configured source from ``path`` (already resolved against the project root)."""
    if cfg.source == "default":
        table = read_table_file(path)
        if cfg.n_locations and cfg.n_locations < len(table):
            rows = np.sort(np.random.default_rng(cfg.seed).choice(len(table), cfg.n_locations, replace=False))
            table = table.iloc[rows]
        table = table.copy()
        table.insert(0, "id", [f"mp16-{i}" for i in table.index])
        return validate_rows(table, source="mp16", base_dir=path.parent, root=root, input_rows=table.index.to_numpy())
    if cfg.source == "manifest":
        return validate_rows(read_table_file(path), source="manifest", base_dir=path.parent, root=root)
    if cfg.source == "exif_folder":
        return load_exif_folder(path, cfg.group_distance_m, cfg.group_minutes, root)
    raise SourceError(f"raw_locations.source {cfg.source!r} is not known; use default, manifest or exif_folder")


def load_exif_folder(folder: Path, distance_m: float, minutes: float, root: Path) -> SourceResult:
    """Geotagged photos as locations (``ml.data.exif``); EXIF rejections and the shared row
    checks' rejections together, one row per rejected photo."""
    if not Path(folder).is_dir():
        raise SourceError(f"{folder}: not a folder; set raw_locations.path to your folder of geotagged photos")
    rows, exif_rejected, exif, photos, skipped = read_exif_folder(folder, distance_m, minutes)
    checked = validate_rows(
        rows.drop(columns=["input_row", "photos"]),
        source="exif",
        base_dir=Path(folder),
        root=root,
        input_rows=rows["input_row"].to_numpy(),
    )
    # a group refused by the row checks loses all its photos: one rejected row per photo
    refused = checked.rejected.merge(rows[["input_row", "photos"]], on="input_row")
    members = exif.assign(first=exif.groupby("group")["input_row"].transform("min"))
    per_photo = refused.merge(members[["first", "input_row", "photo"]], left_on="input_row", right_on="first",
                              suffixes=("_group", ""))
    own = exif_rejected.assign(row_json=[json.dumps({"photo": p}) for p in exif_rejected["photo"]])
    rejected = pd.concat(
        [own[REJECTED_COLUMNS], per_photo.assign(row_json=[json.dumps({"photo": p}) for p in per_photo["photo"]])[
            REJECTED_COLUMNS]],
        ignore_index=True,
    ).sort_values("input_row", ignore_index=True)
    views = rows.set_index("id")["photos"]
    in_locations = int(views.loc[checked.locations["id"]].sum()) if len(checked.locations) else 0
    assert in_locations + len(rejected) == len(photos), (in_locations, len(rejected), len(photos))
    return SourceResult(
        locations=checked.locations,
        rejected=rejected,
        n_input=len(photos),
        tables={"exif": exif.drop(columns=["id"])},
        counts={"photos": len(photos), "photos_in_locations": in_locations, "other_files_skipped": skipped},
    )


def read_table_file(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as raw values (strings for CSV), with normalised column names."""
    if not path.exists():
        raise SourceError(f"{path}: file not found; set raw_locations.path in params.yaml")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty; expected a header with columns lat, lon")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = pd.read_parquet(path)
    elif suffix in (".csv", ".txt"):
        # Strings throughout: "NA" is Namibia or an id, not a missing value.
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    else:
        raise SourceError(f"{path}: unsupported manifest format {suffix!r}; use .csv or .parquet")
    table.columns = [COLUMN_ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise SourceError(
            f"{path}: missing required column(s) {', '.join(missing)}; found {', '.join(map(str, table.columns)) or 'none'}"
        )
    return table.reset_index(drop=True)


def validate_rows(
    table: pd.DataFrame,
    source: str,
    base_dir: Path,
    root: Path,
    input_rows: np.ndarray | None = None,
) -> SourceResult:
    """Accept or reject each row; the first failing check is the row's reason."""
    n = len(table)
    input_rows = np.arange(n) if input_rows is None else np.asarray(input_rows)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)

    def reject(mask: np.ndarray, why: str, details) -> None:
        new = mask & (reason == None)  # noqa: E711 (elementwise)
        reason[new] = why
        detail[new] = np.asarray(details, dtype=object)[new] if not isinstance(details, str) else details

    lat = _coordinate(table["lat"], "lat", -90.0, 90.0, reject)
    lon = _coordinate(table["lon"], "lon", -180.0, 180.0, reject)
    lon = np.where(lon == 180.0, -180.0, lon)  # one meridian, one value

    ids = _ids(table, input_rows)
    first = pd.Series(np.arange(n)).groupby(ids).transform("min").to_numpy()
    reject(first != np.arange(n), "duplicate id", [f"id {i!r} first used by input row {input_rows[f]}" for i, f in zip(ids, first)])

    heading = _optional_number(table, "heading", reject)
    captured = _optional_time(table, reject)

    images = image_paths(table, base_dir)
    for i, paths in enumerate(images):
        if reason[i] is not None:
            continue
        for p in paths:
            if not p.exists():
                reason[i], detail[i] = "image file not found", str(p)
                break
            if p.stat().st_size == 0:
                reason[i], detail[i] = "image file is empty", str(p)
                break

    ok = reason == None  # noqa: E711
    locations = pd.DataFrame(
        {
            "id": ids[ok],
            "lat": lat[ok],
            "lon": lon[ok],
            "source": source,
            "image_paths": [[_relative(p, root) for p in images[i]] for i in np.flatnonzero(ok)],
            "heading": heading[ok],
            "captured_at": captured[ok],
            "input_row": input_rows[ok].astype(np.int64),
        },
        columns=LOCATION_COLUMNS,
    )
    bad = np.flatnonzero(~ok)
    records = table.iloc[bad].to_dict(orient="records")
    rejected = pd.DataFrame(
        {
            "input_row": input_rows[bad].astype(np.int64),
            "reason": reason[bad].astype(str),
            "detail": detail[bad].astype(str),
            "row_json": [json.dumps(r, default=str, ensure_ascii=False) for r in records],
        },
        columns=REJECTED_COLUMNS,
    )
    assert len(locations) + len(rejected) == n
    return SourceResult(locations=locations.reset_index(drop=True), rejected=rejected, n_input=n)


def _is_blank(values: pd.Series) -> np.ndarray:
    as_str = values.astype(str).str.strip().str.lower()
    return (values.isna() | as_str.isin(["", "nan", "none", "null"])).to_numpy()


def _coordinate(values: pd.Series, name: str, lo: float, hi: float, reject) -> np.ndarray:
    raw = values.to_numpy(dtype=object)
    num = pd.to_numeric(values.astype(str).str.strip() if values.dtype == object or values.dtype == "str" else values, errors="coerce")
    num = num.to_numpy(dtype=np.float64)
    blank = _is_blank(values)
    text = [repr(v) for v in raw]
    reject(blank, f"{name} is missing or NaN", [f"{name}={t}" for t in text])
    reject(np.isnan(num) & ~blank, f"{name} is not a number", [f"{name}={t}" for t in text])
    reject(np.isinf(num), f"{name} is infinite", [f"{name}={t}" for t in text])
    with np.errstate(invalid="ignore"):
        out = np.isfinite(num) & ((num < lo) | (num > hi))
    reject(out, f"{name} out of range [{lo:g}, {hi:g}]", [f"{name}={t}" for t in text])
    return num


def _ids(table: pd.DataFrame, input_rows: np.ndarray) -> np.ndarray:
    generated = np.array([f"row-{r}" for r in input_rows], dtype=object)
    if "id" not in table.columns:
        return generated
    ids = table["id"].astype(str).str.strip().to_numpy(dtype=object)
    blank = _is_blank(table["id"])
    return np.where(blank, generated, ids)


def _optional_number(table: pd.DataFrame, name: str, reject) -> np.ndarray:
    if name not in table.columns:
        return np.full(len(table), np.nan)
    values = table[name]
    blank = _is_blank(values)
    num = pd.to_numeric(values.where(~blank, None), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~blank & ~np.isfinite(num)
    reject(bad, f"{name} is not a finite number", [f"{name}={v!r}" for v in values.to_numpy(dtype=object)])
    return np.where(bad, np.nan, num)


def _optional_time(table: pd.DataFrame, reject) -> np.ndarray:
    if "captured_at" not in table.columns:
        return pd.Series(pd.NaT, index=range(len(table)), dtype="datetime64[us]").to_numpy()
    values = table["captured_at"]
    blank = _is_blank(values)
    parsed = pd.to_datetime(values.where(~blank, None), errors="coerce", format="mixed", utc=True)
    parsed = parsed.dt.tz_convert(None).astype("datetime64[us]")
    bad = ~blank & parsed.isna().to_numpy()
    reject(bad, "captured_at is not a date", [f"captured_at={v!r}" for v in values.to_numpy(dtype=object)])
    return parsed.to_numpy()


IMAGE_COLUMNS = ("image_path", "image_paths")


def image_paths(table: pd.DataFrame, base_dir: Path) -> list[list[Path]]:
    """Each manifest row's image files (``image_path``, or several in ``image_paths`` separated
    by ``;``), relative ones under ``base_dir``: the one reader of this manifest format."""
    cols = [c for c in IMAGE_COLUMNS if c in table.columns]
    out: list[list[Path]] = [[] for _ in range(len(table))]
    for col in cols:
        for i, value in enumerate(table[col].to_numpy(dtype=object)):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            for part in str(value).split(";"):
                if part.strip():
                    p = Path(part.strip()).expanduser()
                    out[i].append(p if p.is_absolute() else base_dir / p)
    return out


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())
