"""The two training assets' work, from the project root's files to their outputs: the same
functions run in the asset's process (``processes: 1``) or in every torchrun process
(``ml.train.launch``); only rank 0 writes outputs. ``run_training`` picks the way."""

from __future__ import annotations

import json
import os

from ml.config import load_config
from ml.paths import Paths
from ml.store import read_table
from ml.train.common import curves_png


def _main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run_streetclip(paths: Paths) -> dict:
    from ml.train.contrastive import StreetclipConfig, train_streetclip

    cfg = load_config(StreetclipConfig, paths.params)
    images = read_table(paths.asset_db("location_images"), "images")
    table = read_table(paths.asset_db("captions"), "captions")
    out = paths.asset_dir("streetclip")
    checkpoints = paths.cache_dir("streetclip") / "checkpoint"
    result = train_streetclip(
        images, table, paths.shards, paths.reference, cfg, out / "model", _progress(), checkpoints
    )
    metrics = {"retrieval_before": result.retrieval_before, "retrieval_after": result.retrieval_after}
    metrics |= {"train_pairs": result.train_pairs, "seconds": result.seconds, "images_per_s": result.images_per_s}
    metrics |= {k: v for k, v in result.extra.items() if k != "is_main"} | {"losses": result.losses}
    if _main_rank():
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (out / "loss.png").write_bytes(curves_png({"contrastive loss": result.losses}, f"streetclip ({cfg.backbone})"))
    return metrics


def run_geocell_model(paths: Paths) -> dict:
    from ml.data.streetview import apply_panoramas
    from ml.geo.geocells import GeocellIndex, load_geocells
    from ml.models.geocell import save_geocell_model
    from ml.train.geocell import GeocellModelConfig, train_geocell_model

    cfg = load_config(GeocellModelConfig, paths.params)
    cells = load_geocells(paths.asset_dir("geocells"))
    panoramas = read_table(paths.asset_db("location_images"), "panoramas")
    result = train_geocell_model(
        apply_panoramas(read_table(paths.asset_db("enriched_locations"), "locations"), panoramas),
        read_table(paths.asset_db("location_images"), "images"),
        paths.shards,
        cells.cells,
        dict(zip(cells.assignments["id"].astype(str), cells.assignments["cell_id"])),
        GeocellIndex.from_geocells(cells).lookup,
        paths.streetclip_model,
        cfg,
        _progress(),
        paths.cache_dir("geocell_model") / "checkpoint",
    )
    metrics = result.metrics | {"seconds": result.seconds, "history": result.history}
    if _main_rank():
        out = save_geocell_model(result.model, paths.geocell_model)
        (out.parent / "metrics.json").write_text(json.dumps(metrics, indent=2))
        curves = {k: v for k, v in result.history.items() if k != "val_geoguessr"}
        curves["val GeoGuessr / 5000"] = [g / 5000 for g in result.history.get("val_geoguessr", [])]
        (out.parent / "curves.png").write_bytes(curves_png(curves, "geocell_model", xlabel="epoch"))
    return metrics


def _progress() -> bool:
    """Progress bars on an interactive terminal only."""
    import sys

    return sys.stderr.isatty()


RUNS = {"streetclip": run_streetclip, "geocell_model": run_geocell_model}
METRICS = {"streetclip": ("streetclip", "metrics.json"), "geocell_model": ("geocell_model", "metrics.json")}


def run_training(asset: str, paths: Paths, processes: int, device: str) -> dict:
    """Train ``asset`` here (one process) or under torchrun (``processes`` > 1); its metrics."""
    if processes <= 1:
        return RUNS[asset](paths)
    import torch

    from ml.train.distributed import launch

    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    launch(asset, paths.root, processes, cuda)
    folder, name = METRICS[asset]
    return json.loads((paths.asset_dir(folder) / name).read_text())
