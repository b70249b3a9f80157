"""prototypes and model_bundle (``ml.stages.prototypes``, ``ml.stages.model_bundle``)."""

import dagster as dg
import numpy as np

from assets.code import code_version
from assets.deployment import pod_tags
from assets.history import versioned
from assets.metadata import counts_table
from assets.resources import RoostResource
from ml.settings import BundleConfig, PrototypesConfig


@dg.asset(
    group_name="models",
    kinds={"safetensors"},
    deps=["geocell_model", "geocells", "location_images", "enriched_locations"],
    op_tags=pod_tags("prototypes"),
    code_version=code_version("prototypes"),
)
@versioned
def prototypes(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """Per geocell, OPTICS clusters of the training locations: mean embedding and location."""
    from ml.stages.prototypes import run_prototypes

    paths, cfg = roost.paths(), roost.config(PrototypesConfig)
    protos, seconds = run_prototypes(paths, cfg)
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
            "path": dg.MetadataValue.path(str(paths.asset_dir("prototypes"))),
        }
    )


@dg.asset(
    group_name="models",
    kinds={"folder"},
    deps=["geocell_model", "geocells", "prototypes"],
    code_version=code_version("model_bundle"),
)
@versioned
def model_bundle(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """Everything inference needs, in one checksummed folder: what predict and the report load."""
    from ml.bundle import read_manifest
    from ml.stages.model_bundle import run_model_bundle

    paths, cfg = roost.paths(), roost.config(BundleConfig)
    folder, card = run_model_bundle(paths, cfg)
    manifest = read_manifest(folder)
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
