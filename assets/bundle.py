"""prototypes and model_bundle."""

import json

import dagster as dg
import numpy as np

from assets.metadata import counts_table
from ml.bundle import BundleConfig, write_bundle
from ml.config import read_params, resolve_section
from ml.data.images import ImageStore
from ml.data.streetview import apply_panoramas
from ml.geo.geocells import load_geocells
from ml.model_card import model_card
from ml.models.geocell import load_geocell_model
from ml.refine.prototypes import PrototypesConfig, build_prototypes, location_embeddings
from ml.store import read_table, write_tables
from orchestration.deployment import pod_tags
from orchestration.resources import RoostResource


@dg.asset(
    group_name="models",
    kinds={"safetensors"},
    deps=["geocell_model", "geocells", "location_images", "enriched_locations"],
    op_tags=pod_tags("prototypes"),
)
def prototypes(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """Per geocell, OPTICS clusters of the training locations: mean embedding and location."""
    paths, cfg = roost.paths(), roost.config(PrototypesConfig)
    model = load_geocell_model(paths.geocell_model)
    cells = load_geocells(paths.asset_dir("geocells")).assignments
    images = read_table(paths.asset_db("location_images"), "images")
    cells = cells[cells["id"].astype(str).isin(set(images["location_id"].astype(str)))]
    cells = apply_panoramas(cells, read_table(paths.asset_db("location_images"), "panoramas"))
    store = ImageStore(paths.shards)
    ids = cells["id"].astype(str).to_numpy()
    embeddings = location_embeddings(model, images, list(ids), store, cfg.batch_size)
    store.close()
    protos, seconds = build_prototypes(
        ids, cells["lat"].to_numpy(), cells["lon"].to_numpy(), cells["cell_id"].to_numpy(), embeddings, cfg
    )
    out = paths.asset_dir("prototypes")
    protos.save(out)
    write_tables(paths.asset_db("prototypes"), {"prototypes": protos.table()})
    per_cell = np.bincount(protos.cell)
    context.log.info(f"{len(protos.cell)} prototypes for {len(per_cell)} cells in {seconds:.1f} s")
    return dg.MaterializeResult(
        metadata={
            "prototypes": len(protos.cell),
            "cells": int((per_cell > 0).sum()),
            "prototypes_per_cell": counts_table(
                {str(k): int(v) for k, v in zip(*np.unique(per_cell, return_counts=True))},
                key="prototypes",
                value="cells",
            ),
            "build_seconds": round(seconds, 2),
            "path": dg.MetadataValue.path(str(out)),
        }
    )


BUNDLE_SECTIONS = ("raw_locations", "enriched_locations", "location_images", "captions", "geocells", "streetclip")
BUNDLE_SECTIONS += ("geocell_model", "prototypes", "refine", "model_bundle")


@dg.asset(group_name="models", kinds={"folder"}, deps=["geocell_model", "geocells", "prototypes"])
def model_bundle(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """Everything inference needs, in one checksummed folder: what predict and the report load."""
    paths, cfg = roost.paths(), roost.config(BundleConfig)
    raw = read_params(paths.params)
    params = {"profile": raw["profile"]} | {s: resolve_section(raw, s, paths.params) for s in BUNDLE_SECTIONS}
    metrics = json.loads((paths.asset_dir("geocell_model") / "metrics.json").read_text())
    n_train = len(load_geocells(paths.asset_dir("geocells")).assignments)
    card = model_card(params, metrics, cfg.image_domain, n_train)
    folder = write_bundle(
        paths.bundle,
        model_folder=paths.geocell_model,
        tokenizer_folder=paths.streetclip_model,
        geocells_folder=paths.asset_dir("geocells"),
        prototypes_folder=paths.asset_dir("prototypes"),
        reference=paths.reference,
        params=params,
        metrics=metrics,
        card=card,
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return dg.MaterializeResult(
        metadata={
            "files": len(manifest["files"]),
            "bytes": size,
            "schema_version": manifest["schema_version"],
            "image_domain": cfg.image_domain,
            "model_card": dg.MetadataValue.md(card),
            "path": dg.MetadataValue.path(str(folder)),
        }
    )
