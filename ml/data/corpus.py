"""raw_locations' corpus: the configured source (batch ``base``) plus every batch landed in the
landing folder (``ml.landing``), read as one table.

- **Ids stay unique and stable**: a batch's ids are ``<batch>/<id>`` (the base keeps its own), so
  the same id in two batches names two locations, and a location keeps its id whatever lands later.
- **Nothing arrives twice**: a location's content key is a digest of its photos' bytes (of its
  coordinates, heading and time where it has no photo). A batch location whose key was seen
  before (in the base, an earlier batch, or earlier in the same batch) is rejected with the
  reason ``duplicate of <batch>/<id>``, every photo of it (a photo folder's location may group
  several). The base is read as configured, never deduplicated against itself.
- **Counts reconcile per batch and overall**: for each batch, input rows (a folder's: photos) =
  rows (photos) in accepted locations + rejected rows, duplicates included; the ``batches`` table
  holds the figures, and the corpus' totals are their sums.

A batch that cannot be read as a whole (a missing column, an empty file) stops the step with an
error naming it: fix the file, or remove the batch (``roost batches remove NAME``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.sources import REJECTED_COLUMNS, SourceError, SourceResult, load_raw_locations
from ml.landing import BASE, Batch, batch_signature
from ml.settings import RawLocationsConfig

BATCH_COLUMNS = [
    "batch",
    "source",
    "path",
    "signature",
    "input_rows",
    "in_locations",
    "locations",
    "rejected",
    "duplicates",
]
DUPLICATE = "duplicate of "  # a duplicate's reason: this, then the location it repeats


def load_corpus(cfg: RawLocationsConfig, base_path: Path, batches: list[Batch], root: Path) -> SourceResult:
    """The base source and every batch as one ``SourceResult``, with the ``batches`` table."""
    parts = [(Batch(BASE, base_path, cfg.source), load_raw_locations(cfg, base_path, root))]
    for b in batches:
        try:
            parts.append((b, load_raw_locations(replace(cfg, source=b.source, path=str(b.path)), b.path, root)))
        except SourceError as e:
            raise SourceError(f"batch {b.name!r}: {e}; fix it, or: roost batches remove {b.name}") from e
    digests: dict[str, str] = {}
    seen: dict[str, str] = {}
    locations, rejected, rows, tables = [], [], [], {}
    counts: dict[str, int] = {}
    for batch, result in parts:
        located = result.locations.copy()
        if batch.name != BASE:
            located["id"] = batch.name + "/" + located["id"].astype(str)
        keys = content_keys(located, root, digests)
        first_of = np.array([seen.setdefault(k, i) for k, i in zip(keys, located["id"])], dtype=object)
        duplicate = (first_of != located["id"].to_numpy(dtype=object)) & (batch.name != BASE)
        photos = _photos_per_location(result)
        dup_rows = _duplicate_rows(located[duplicate], first_of[duplicate], result, keys[duplicate])
        kept = located[~duplicate].assign(batch=batch.name)
        lost = pd.concat([result.rejected[REJECTED_COLUMNS], dup_rows], ignore_index=True).assign(batch=batch.name)
        in_locations = int(sum(photos.get(r, 1) for r in kept["input_row"]))
        assert in_locations + len(lost) == result.n_input, (batch.name, in_locations, len(lost), result.n_input)
        locations.append(kept)
        rejected.append(lost)
        signature = batch_signature(batch.path) if batch.name != BASE and batch.path.exists() else ""
        rows.append(
            [
                batch.name,
                batch.source,
                str(batch.path),
                signature,
                result.n_input,
                in_locations,
                len(kept),
                len(lost),
                len(dup_rows),
            ]
        )
        for name, table in result.tables.items():
            tables.setdefault(name, []).append(table.assign(batch=batch.name))
        for k, v in result.counts.items():
            counts[k] = counts.get(k, 0) + int(v)
    table = pd.DataFrame(rows, columns=BATCH_COLUMNS)
    return SourceResult(
        locations=pd.concat(locations, ignore_index=True),
        rejected=pd.concat(rejected, ignore_index=True),
        n_input=int(table["input_rows"].sum()),
        tables={name: pd.concat(parts_, ignore_index=True) for name, parts_ in tables.items()} | {"batches": table},
        counts=counts | {"batches": len(batches), "duplicates": int(table["duplicates"].sum())},
    )


def content_keys(locations: pd.DataFrame, root: Path, digests: dict[str, str]) -> np.ndarray:
    """Each location's content key: its photos' bytes, else its coordinates, heading and time."""
    keys = []
    for row in locations[["lat", "lon", "image_paths", "heading", "captured_at"]].itertuples(index=False):
        paths = list(row.image_paths) if row.image_paths is not None else []
        if paths:
            parts = sorted(_file_digest(root / p, digests) for p in paths)
        else:
            parts = [f"{row.lat:.6f},{row.lon:.6f}", str(row.heading), str(row.captured_at)]
        keys.append(hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest())
    return np.array(keys, dtype=object)


def _file_digest(path: Path, digests: dict[str, str]) -> str:
    key = str(path)
    if key not in digests:
        digest = hashlib.blake2b(digest_size=16)
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        digests[key] = digest.hexdigest()
    return digests[key]


def _photos_per_location(result: SourceResult) -> dict[int, int]:
    """A photo folder's locations: input_row (the group's first photo) -> photos in the group."""
    exif = result.tables.get("exif")
    if exif is None or not len(exif):
        return {}
    first = exif.groupby("group")["input_row"].transform("min")
    return {int(k): int(v) for k, v in first.value_counts().items()}


def _duplicate_rows(located: pd.DataFrame, first_of: np.ndarray, result: SourceResult, keys) -> pd.DataFrame:
    """Rejected rows for duplicate locations: one per input row (a folder's: per photo)."""
    exif = result.tables.get("exif")
    out = []
    for loc, first, key in zip(located.to_dict(orient="records"), first_of, keys):
        detail = f"the same content (key {key}) as {first}"
        if exif is not None and len(exif):
            group = exif.loc[exif["input_row"] == loc["input_row"], "group"].iloc[0]
            members = exif[exif["group"] == group]
            for r, photo in zip(members["input_row"], members["photo"]):
                out.append([int(r), DUPLICATE + first, detail, json.dumps({"photo": photo})])
        else:
            record = {k: loc[k] for k in ("id", "lat", "lon", "image_paths", "heading", "captured_at")}
            out.append([int(loc["input_row"]), DUPLICATE + first, detail, json.dumps(record, default=str)])
    return pd.DataFrame(out, columns=REJECTED_COLUMNS)
