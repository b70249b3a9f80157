"""geocell_model: the geocell classifier trained on the train split and selected on val
(``ml.train.geocell``), in this process or in every torchrun process; its val metrics beside
the no-skill baselines on the same val locations, with bootstrap 95% intervals that resample
the split's val blocks whole (as the report does for the holdout), so val and test figures can
be held against each other's intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml.config import load_config
from ml.data.split import block_ids
from ml.eval.metrics import baselines, set_metrics
from ml.geo.cells import GeocellIndex
from ml.models.geocell import save_geocell_model
from ml.paths import Paths
from ml.settings import EnrichConfig, GeocellModelConfig, ReportConfig
from ml.stages.geocells import read_geocells
from ml.stages.location_images import read_images, read_located
from ml.train.common import curves_png, show_progress
from ml.train.distributed import main_rank
from ml.train.geocell import train_geocell_model

STAGE = "geocell_model"


def run_geocell_model(paths: Paths) -> dict:
    """Trains and (rank 0) writes the model, ``metrics.json`` and ``curves.png``; the metrics."""
    cfg = load_config(GeocellModelConfig, paths.params)
    cells = read_geocells(paths)
    train_cell = dict(zip(cells.assignments["id"].astype(str), cells.assignments["cell_id"]))
    lookup = GeocellIndex.from_geocells(cells).lookup
    checkpoints = paths.cache_dir(STAGE) / "checkpoint"
    result = train_geocell_model(
        read_located(paths),
        read_images(paths),
        paths.shards,
        cells.cells,
        train_cell,
        lookup,
        paths.streetclip_model,
        cfg,
        show_progress(),
        checkpoints,
    )
    train, val = result.train, result.val
    medoid = {}
    if len(val) and len(train):
        truth, known = (val["lat"], val["lon"]), (train["lat"], train["lon"])
        medoid = baselines(*truth, *known, cfg.seed, train.get("country"), val.get("country"))
    metrics = {"val": result.metrics["val"]}
    if result.val_rows is not None and len(val):
        metrics |= val_intervals(paths, val, result.val_rows)
    metrics["val_train_medoid"] = medoid.get("train_medoid", {})  # the no-skill baselines on the same val locations
    metrics["val_largest_country"] = medoid.get("largest_country", {})
    metrics |= {k: v for k, v in result.metrics.items() if k != "val"}
    metrics |= {"seconds": result.seconds, "history": result.history}
    if main_rank():
        save_geocell_model(result.model, paths.geocell_model)
        metrics_file(paths).write_text(json.dumps(metrics, indent=2))
        curves = {k: v for k, v in result.history.items() if k != "val_geoguessr"}
        curves["val GeoGuessr / 5000"] = [g / 5000 for g in result.history.get("val_geoguessr", [])]
        curves_file(paths).write_bytes(curves_png(curves, STAGE, xlabel="epoch"))
    return metrics


def val_intervals(paths: Paths, val, rows) -> dict:
    """``val_intervals`` ({metric: {low, high}}, the report's names) over ``val_blocks`` blocks of
    the split's ``block_km``, with the report's resample count and seed."""
    block_km = load_config(EnrichConfig, paths.params).split.block_km
    report = load_config(ReportConfig, paths.params)
    blocks = block_ids(val["lat"].to_numpy(), val["lon"].to_numpy(), block_km)
    found = set_metrics(rows, report.bootstrap, report.seed, blocks)
    intervals = {name: {"low": m["low"], "high": m["high"]} for name, m in found.items()}
    return {"val_intervals": intervals, "val_blocks": len(np.unique(blocks)), "val_block_km": block_km}


def metrics_file(paths: Paths) -> Path:
    return paths.asset_dir(STAGE) / "metrics.json"


def curves_file(paths: Paths) -> Path:
    return paths.asset_dir(STAGE) / "curves.png"


def metrics_of(paths: Paths) -> dict:
    """The val metrics and training record ``run_geocell_model`` wrote."""
    return json.loads(metrics_file(paths).read_text())
