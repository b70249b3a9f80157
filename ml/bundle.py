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
from pathlib import Path

import pandas as pd
import yaml

from ml import __version__
from ml.geo.cells import GeocellIndex, Geocells
from ml.refine.prototypes import Prototypes

SCHEMA_VERSION = 1
REFERENCE_FILES = (
    "admin0_naturalearth_10m.parquet",
    "admin1_naturalearth_10m.parquet",
    "geonames_cities15000.csv",
    "koppen_geiger_classes.csv",
    "SOURCES.md",
)  # copied from data/reference


class BundleError(ValueError):
    """The bundle is missing, incomplete, tampered with, or of an unknown schema version."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# The layout: every member's name in the bundle folder (this module is its one home).
MANIFEST = "manifest.json"
CARD = "MODEL_CARD.md"
PARAMS = "params.yaml"
METRICS = "metrics.json"
MODEL = "model"
TOKENIZER = "tokenizer"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
CELLS = "geocells.parquet"
SITES = "geocell_sites.parquet"
PROTOTYPE_TABLE = "prototypes.parquet"
REFERENCE = "reference"
COUNTRIES = "admin0_naturalearth_10m.parquet"
REGIONS = "admin1_naturalearth_10m.parquet"
TOWNS = "geonames_cities15000.csv"


def write_bundle(
    folder: Path,
    *,
    model_folder: Path,
    tokenizer_folder: Path,
    cells: Geocells,
    prototypes: Prototypes,
    prototype_table: pd.DataFrame,
    reference: Path,
    params: dict,
    metrics: dict,
    card: str,
) -> Path:
    """Assemble the bundle in ``folder`` (replaced) and write its manifest last."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / REFERENCE).mkdir(parents=True)
    shutil.copytree(model_folder, folder / MODEL)
    (folder / TOKENIZER).mkdir()
    for name in TOKENIZER_FILES:
        if (tokenizer_folder / name).exists():
            shutil.copy2(tokenizer_folder / name, folder / TOKENIZER / name)
    cells.geodataframe().to_parquet(folder / CELLS)
    cells.assignments[["lat", "lon", "cell_id"]].to_parquet(folder / SITES, index=False)
    prototypes.save(folder)
    pd.DataFrame(prototype_table).to_parquet(folder / PROTOTYPE_TABLE, index=False)
    for name in REFERENCE_FILES:
        shutil.copy2(reference / name, folder / REFERENCE / name)
    (folder / PARAMS).write_text(yaml.safe_dump(params, sort_keys=False))
    (folder / METRICS).write_text(json.dumps(metrics, indent=2))
    (folder / CARD).write_text(card)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "roost_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": {str(p.relative_to(folder)): sha256(p) for p in files},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


def plain_geoparquet(path: Path) -> pd.DataFrame:
    """A GeoParquet file (WKB geometry) as a pandas frame whose ``geometry`` holds shapely objects."""
    import pyarrow.parquet as pq
    import shapely

    table = pq.read_table(path)
    geo = json.loads(table.schema.metadata[b"geo"])
    column = geo["primary_column"]
    if geo["columns"][column].get("encoding", "WKB").upper() != "WKB":
        raise BundleError(f"{path}: geometry encoded as {geo['columns'][column]['encoding']}, expected WKB")
    frame = table.to_pandas()
    frame["geometry"] = shapely.from_wkb(frame.pop(column).to_numpy())
    return frame


def bundle_id(manifest: dict) -> str:
    """A bundle's identity: the digest of its files' checksums (the same files, the same id)."""
    return hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(folder: Path) -> dict:
    """The manifest as written, unchecked (``verify_bundle`` checks it)."""
    return json.loads((Path(folder) / MANIFEST).read_text())


def verify_bundle(folder: Path) -> dict:
    """The manifest, after checking the schema version and every file's checksum."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
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


class Bundle:
    """A verified bundle's members, read as inference needs them."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.manifest = verify_bundle(self.folder)

    @property
    def params(self) -> Path:
        """The resolved params of the stages that made the model (read with ``ml.config.load_config``)."""
        return self.folder / PARAMS

    @property
    def model(self) -> Path:
        return self.folder / MODEL

    def cells(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The cells table, by cell id (no polygons unless asked for)."""
        return pd.read_parquet(self.folder / CELLS, columns=columns).sort_values("cell_id").reset_index(drop=True)

    def sites(self) -> pd.DataFrame:
        """The training locations (lat, lon) and their cells."""
        return pd.read_parquet(self.folder / SITES)

    def prototypes(self) -> Prototypes:
        return Prototypes.load(self.folder)

    def cell_index(self) -> GeocellIndex:
        import geopandas as gpd  # geopandas' import is slow; only the lookup pays it

        sites = self.sites()
        cells = gpd.read_parquet(self.folder / CELLS).sort_values("cell_id")
        return GeocellIndex(cells.geometry.to_numpy(), sites["lat"], sites["lon"], sites["cell_id"])

    def reference(self, name: str) -> Path:
        """A reference file copied into the bundle (``REFERENCE_FILES``)."""
        return self.folder / REFERENCE / name

    def countries(self):
        import geopandas as gpd  # as above

        return gpd.read_parquet(self.reference(COUNTRIES))

    def regions(self):
        import geopandas as gpd  # as above

        return gpd.read_parquet(self.reference(REGIONS))

    def admin_tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Countries and admin-1 regions as plain frames (shapely geometries in ``geometry``),
        read with pyarrow: what naming a place needs, without geopandas, whose import and reader
        cost a cold ``roost predict`` about 0.3 s. The maps draw ``countries()``."""
        return plain_geoparquet(self.reference(COUNTRIES)), plain_geoparquet(self.reference(REGIONS))

    def towns(self) -> pd.DataFrame:
        return pd.read_csv(self.reference(TOWNS), keep_default_na=False)
