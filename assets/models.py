"""streetclip (and, as they come, the other model assets)."""

import json

import dagster as dg

from assets.captions import captions
from assets.images import location_images
from assets.metadata import png
from ml.store import read_table
from ml.train.common import curves_png
from ml.train.contrastive import StreetclipConfig, train_streetclip
from orchestration.resources import RoostResource


@dg.asset(group_name="models", kinds={"pytorch"}, deps=[location_images, captions])
def streetclip(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """CLIP fine-tuned contrastively on (view, synthetic caption) pairs of the train split."""
    paths, cfg = roost.paths(), roost.config(StreetclipConfig)
    images = read_table(paths.asset_db("location_images"), "images")
    table = read_table(paths.asset_db("captions"), "captions")
    out = paths.asset_dir("streetclip")
    result = train_streetclip(
        images, table, paths.asset_dir("location_images") / "shards", paths.reference, cfg, out / "model"
    )
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
            "path": dg.MetadataValue.path(str(out / "model")),
        }
    )
