"""streetclip and geocell_model (``ml.stages.streetclip``, ``ml.stages.geocell_model``): in this
process, or under torchrun when the section's ``processes`` is above 1 (``ml.stages.launch``)."""

import dagster as dg

from assets.code import code_version
from assets.deployment import pod_tags
from assets.history import versioned
from assets.metadata import png
from assets.resources import RoostResource
from ml.settings import GeocellModelConfig, StreetclipConfig


@dg.asset(
    group_name="models",
    kinds={"pytorch"},
    deps=["location_images", "captions"],
    op_tags=pod_tags("streetclip"),
    code_version=code_version("streetclip"),
)
@versioned
def streetclip(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """CLIP fine-tuned contrastively on (view, synthetic caption) pairs of the train split."""
    from ml.stages.launch import run_training
    from ml.stages.streetclip import loss_file

    paths, cfg = roost.paths(), roost.config(StreetclipConfig)
    m = run_training("streetclip", paths, cfg.processes, cfg.device)
    context.log.info(f"retrieval before {m['retrieval_before']} after {m['retrieval_after']}")
    return dg.MaterializeResult(
        metadata={
            "backbone": cfg.backbone,
            "train_pairs": m["train_pairs"],
            "epochs": cfg.epochs,
            "processes": m["processes"],
            "resumed_at_step": m["resumed_at_step"],
            "final_loss": m["losses"][-1] if m["losses"] else float("nan"),
            "retrieval_before": dg.MetadataValue.json(m["retrieval_before"]),
            "retrieval_after": dg.MetadataValue.json(m["retrieval_after"]),
            "images_per_s": round(m["images_per_s"], 1),
            "loss_curve": png(loss_file(paths).read_bytes(), "loss"),
            "path": dg.MetadataValue.path(str(paths.streetclip_model)),
        }
    )


@dg.asset(
    group_name="models",
    kinds={"pytorch"},
    deps=["streetclip", "geocells", "location_images", "enriched_locations"],
    op_tags=pod_tags("geocell_model"),
    code_version=code_version("geocell_model"),
)
@versioned
def geocell_model(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """The geocell classifier: streetclip's last layer(s) + cell head + multi-task heads."""
    from ml.stages.geocell_model import curves_file
    from ml.stages.launch import run_training

    paths, cfg = roost.paths(), roost.config(GeocellModelConfig)
    m = run_training("geocell_model", paths, cfg.processes, cfg.device)
    val = m["val"]
    context.log.info(f"val {val}; untrained {m['val_untrained']}")
    return dg.MaterializeResult(
        metadata={
            "val_top1": val.get("top1", 0.0),
            "val_top5": val.get("top5", 0.0),
            "val_median_km": val.get("median_km", 0.0),
            "val": dg.MetadataValue.json(val),
            "val_untrained": dg.MetadataValue.json(m["val_untrained"]),
            "val_intervals": dg.MetadataValue.json(m.get("val_intervals", {})),
            "val_most_frequent_cell_top1": m["val_most_frequent_cell_top1"],
            "epochs_run": m["epochs_run"],
            "cells": m["cells"],
            "processes": m["processes"],
            "resumed_at_step": m["resumed_at_step"],
            "seconds": round(m["seconds"], 1),
            "curves": png(curves_file(paths).read_bytes(), "training curves"),
            "path": dg.MetadataValue.path(str(paths.geocell_model)),
        }
    )
