"""prototypes: per geocell, OPTICS clusters of the training locations with their mean embedding
through the trained geocell model and their spherical-mean location (PIGEON's refinement)."""

from __future__ import annotations

import pandas as pd

from ml.models.geocell import load_geocell_model
from ml.paths import Paths
from ml.refine.prototypes import Prototypes, build_prototypes, location_embeddings
from ml.settings import PrototypesConfig
from ml.stages.geocells import read_geocells
from ml.stages.location_images import open_store, read_images, read_located
from ml.store import read_table, write_tables

STAGE = "prototypes"


def run_prototypes(paths: Paths, cfg: PrototypesConfig) -> tuple[Prototypes, float]:
    """The prototypes (``prototypes.safetensors`` and the ``prototypes`` table) and the
    clustering's seconds."""
    model = load_geocell_model(paths.geocell_model)
    cells = read_geocells(paths).assignments
    images = read_images(paths)
    cells = read_located(paths, cells[cells["id"].astype(str).isin(set(images["location_id"].astype(str)))])
    ids = cells["id"].astype(str).to_numpy()
    with open_store(paths) as store:
        embeddings = location_embeddings(model, images, list(ids), store, cfg.batch_size)
    lat, lon, cell = cells["lat"].to_numpy(), cells["lon"].to_numpy(), cells["cell_id"].to_numpy()
    protos, seconds = build_prototypes(ids, lat, lon, cell, embeddings, cfg)
    protos.save(paths.asset_dir(STAGE))
    write_tables(paths.asset_db(STAGE), {"prototypes": protos.table()})
    return protos, seconds


def read_prototype_table(paths: Paths) -> pd.DataFrame:
    """One row per prototype: its cell, location and members."""
    return read_table(paths.asset_db(STAGE), "prototypes")


def read_prototypes(paths: Paths) -> Prototypes:
    return Prototypes.load(paths.asset_dir(STAGE))
