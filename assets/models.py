"""streetclip (and, as they come, the other model assets)."""

import json

import dagster as dg

from assets.captions import captions
from assets.geocells import geocells
from assets.images import location_images
from assets.locations import enriched_locations
from assets.metadata import png
from ml.data.streetview import apply_panoramas
from ml.geo.geocells import GeocellIndex, load_geocells
from ml.models.geocell import save_geocell_model
from ml.store import read_table
from ml.train.common import curves_png
from ml.train.contrastive import StreetclipConfig, train_streetclip
from ml.train.geocell import GeocellModelConfig, train_geocell_model
from orchestration.resources import RoostResource


@dg.asset(group_name="models", kinds={"pytorch"}, deps=[location_images, captions])
def streetclip(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """CLIP fine-tuned contrastively on (view, synthetic caption) pairs of the train split."""
    paths, cfg = roost.paths(), roost.config(StreetclipConfig)
    images = read_table(paths.asset_db("location_images"), "images")
    table = read_table(paths.asset_db("captions"), "captions")
    out = paths.asset_dir("streetclip")
    result = train_streetclip(images, table, paths.shards, paths.reference, cfg, out / "model")
    metrics = {"retrieval_before": result.retrieval_before, "retrieval_after": result.retrieval_after}
    metrics |= {"train_pairs": result.train_pairs, "seconds": result.seconds, "images_per_s": result.images_per_s}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    curve = curves_png({"contrastive loss": result.losses}, f"streetclip ({cfg.backbone})")
    (out / "loss.png").write_bytes(curve)
    context.log.info(f"retrieval before {result.retrieval_before} after {result.retrieval_after}")
    return dg.MaterializeResult(
        metadata={
            "backbone": cfg.backbone,
            "train_pairs": result.train_pairs,
            "epochs": cfg.epochs,
            "final_loss": result.losses[-1] if result.losses else float("nan"),
            "retrieval_before": dg.MetadataValue.json(result.retrieval_before),
            "retrieval_after": dg.MetadataValue.json(result.retrieval_after),
            "images_per_s": round(result.images_per_s, 1),
            "loss_curve": png(curve, "loss"),
            "path": dg.MetadataValue.path(str(paths.streetclip_model)),
        }
    )


@dg.asset(group_name="models", kinds={"pytorch"}, deps=[streetclip, geocells, location_images, enriched_locations])
def geocell_model(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """The geocell classifier: streetclip's last layer(s) + cell head + multi-task heads."""
    paths, cfg = roost.paths(), roost.config(GeocellModelConfig)
    cells = load_geocells(paths.asset_dir("geocells"))
    index = GeocellIndex.from_geocells(cells)
    panoramas = read_table(paths.asset_db("location_images"), "panoramas")
    result = train_geocell_model(
        apply_panoramas(read_table(paths.asset_db("enriched_locations"), "locations"), panoramas),
        read_table(paths.asset_db("location_images"), "images"),
        paths.shards,
        cells.cells,
        dict(zip(cells.assignments["id"].astype(str), cells.assignments["cell_id"])),
        index.lookup,
        paths.streetclip_model,
        cfg,
    )
    out = save_geocell_model(result.model, paths.geocell_model)
    (out.parent / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    curve = curves_png(result.history, "geocell_model", xlabel="epoch")
    (out.parent / "curves.png").write_bytes(curve)
    val = result.metrics["val"]
    context.log.info(f"val {val}; untrained {result.metrics['val_untrained']}")
    return dg.MaterializeResult(
        metadata={
            "val_top1": val.get("top1", 0.0),
            "val_top5": val.get("top5", 0.0),
            "val_median_km": val.get("median_km", 0.0),
            "val": dg.MetadataValue.json(val),
            "val_untrained": dg.MetadataValue.json(result.metrics["val_untrained"]),
            "val_most_frequent_cell_top1": result.metrics["val_most_frequent_cell_top1"],
            "epochs_run": result.metrics["epochs_run"],
            "cells": result.metrics["cells"],
            "seconds": round(result.seconds, 1),
            "curves": png(curve, "training curves"),
            "path": dg.MetadataValue.path(str(out)),
        }
    )
