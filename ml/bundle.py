"""The model bundle: one versioned folder with everything inference needs.

Layout (schema version 1)::

    manifest.json            schema_version, roost version, created, sha256 of every file
    MODEL_CARD.md            training data, image domain, metrics, licences
    params.yaml              the resolved params of every stage that made the model
    metrics.json             geocell_model's validation metrics
    model/                   geocell model: model.safetensors + config.json (preprocessing)
    tokenizer/               the backbone's tokenizer files
    geocells.parquet         cell polygons and centroids (GeoParquet)
    geocell_sites.parquet    training coordinates -> cell (the lookup's fallback)
    prototypes.safetensors   prototype embeddings, locations, cells
    prototypes.parquet       prototype table (members)
    reference/               admin-0 / admin-1 polygons, GeoNames towns, Köppen classes

Loading verifies every checksum, refuses an unknown schema version, and never unpickles:
weights are safetensors, tables Parquet, configs JSON/YAML.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class BundleConfig:
    SECTION: ClassVar[str] = "model_bundle"

    image_domain: str  # what the model saw in training; predict warns on other domains


SCHEMA_VERSION = 1
REFERENCE_FILES = (
    "admin0_naturalearth_10m.parquet",
    "admin1_naturalearth_10m.parquet",
    "geonames_cities15000.csv",
    "koppen_geiger_classes.csv",
    "SOURCES.md",
)


class BundleError(ValueError):
    """The bundle is missing, incomplete, tampered with, or of an unknown schema version."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bundle(
    folder: Path,
    *,
    model_folder: Path,
    tokenizer_folder: Path,
    geocells_folder: Path,
    prototypes_folder: Path,
    reference: Path,
    params: dict,
    metrics: dict,
    card: str,
) -> Path:
    """Assemble the bundle in ``folder`` (replaced) and write its manifest last."""
    import geopandas as gpd
    import pandas as pd
    import yaml

    from ml.store import read_table

    from . import __version__

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "reference").mkdir(parents=True)
    shutil.copytree(model_folder, folder / "model")
    (folder / "tokenizer").mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (tokenizer_folder / name).exists():
            shutil.copy2(tokenizer_folder / name, folder / "tokenizer" / name)
    gpd.read_parquet(geocells_folder / "geocells.parquet").to_parquet(folder / "geocells.parquet")
    sites = read_table(geocells_folder / "geocells.duckdb", "assignments")[["lat", "lon", "cell_id"]]
    sites.to_parquet(folder / "geocell_sites.parquet", index=False)
    shutil.copy2(prototypes_folder / "prototypes.safetensors", folder / "prototypes.safetensors")
    table = read_table(prototypes_folder / "prototypes.duckdb", "prototypes")
    pd.DataFrame(table).to_parquet(folder / "prototypes.parquet", index=False)
    for name in REFERENCE_FILES:
        shutil.copy2(reference / name, folder / "reference" / name)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (folder / "MODEL_CARD.md").write_text(card)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "roost_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": {str(p.relative_to(folder)): sha256(p) for p in files},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def verify_bundle(folder: Path) -> dict:
    """The manifest, after checking the schema version and every file's checksum."""
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such bundle folder (materialize model_bundle, or pass --bundle DIR)")
    if not manifest_path.exists():
        raise BundleError(f"{folder}: not a Roost bundle (manifest.json missing)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{manifest_path}: unreadable manifest ({e})") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{folder}: bundle schema version {version!r} is not supported by this Roost "
            f"(supports {SCHEMA_VERSION}); rebuild the bundle with this version or install the matching Roost"
        )
    for name, digest in manifest.get("files", {}).items():
        path = folder / name
        if not path.exists():
            raise BundleError(f"{folder}: {name} is missing; the bundle is incomplete")
        if sha256(path) != digest:
            raise BundleError(f"{folder}: {name} does not match its checksum; the bundle was modified or corrupted")
    return manifest
