"""streetclip: CLIP fine-tuned contrastively on (view, synthetic caption) pairs of the train
split (``ml.train.contrastive``), in this process or in every torchrun process."""

from __future__ import annotations

import json
from pathlib import Path

from ml.config import load_config
from ml.paths import Paths
from ml.settings import StreetclipConfig
from ml.stages.captions import read_captions
from ml.stages.location_images import read_images
from ml.train.common import curves_png, show_progress
from ml.train.contrastive import train_streetclip
from ml.train.distributed import main_rank

STAGE = "streetclip"


def run_streetclip(paths: Paths) -> dict:
    """Trains and (rank 0) writes the model, ``metrics.json`` and ``loss.png``; the metrics."""
    cfg = load_config(StreetclipConfig, paths.params)
    checkpoints = paths.cache_dir(STAGE) / "checkpoint"
    images, captions = read_images(paths), read_captions(paths)
    model = paths.streetclip_model
    result = train_streetclip(images, captions, paths.shards, paths.reference, cfg, model, show_progress(), checkpoints)
    metrics = {"retrieval_before": result.retrieval_before, "retrieval_after": result.retrieval_after}
    metrics |= {"train_pairs": result.train_pairs, "seconds": result.seconds, "images_per_s": result.images_per_s}
    metrics |= result.extra | {"losses": result.losses}
    if main_rank():
        metrics_file(paths).write_text(json.dumps(metrics, indent=2))
        curve = curves_png({"contrastive loss": result.losses}, f"streetclip ({cfg.backbone})")
        loss_file(paths).write_bytes(curve)
    return metrics


def metrics_file(paths: Paths) -> Path:
    return paths.asset_dir(STAGE) / "metrics.json"


def loss_file(paths: Paths) -> Path:
    return paths.asset_dir(STAGE) / "loss.png"
