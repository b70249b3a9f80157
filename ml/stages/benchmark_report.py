"""benchmark_report: PIGEON's metrics for the bundle on the holdout split (test), on val (where
choices are made: ``ml.eval.tune``) and every user set in params, the zero-shot rows of the CLIP
models named there, and the reports (Markdown, HTML, DVC metrics and plots). ``roost evaluate``
runs the same functions on a manifest, outside the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ml.config import load_config
from ml.eval.evaluate import SetResult, evaluate_holdout, evaluate_manifest
from ml.eval.report import METRICS_FILE, error_curve, metrics_json, write_report
from ml.eval.zeroshot import ZeroShot, load_clip
from ml.paths import Paths
from ml.predict import Geolocator
from ml.settings import EnrichConfig, ReportConfig
from ml.stages.location_images import open_store, read_images, read_located

STAGE = "benchmark_report"


def zero_shot_models(names: list[str], train: pd.DataFrame, streetclip: Path, resolve, top: int, device="auto"):
    """A zero-shot classifier per CLIP model name (``streetclip``: the asset; else a folder,
    through ``resolve``, or a hub id) over the training locations' regions."""
    out = {}
    for name in names:
        local = resolve(name)
        model, tokenizer, spec = load_clip(str(local) if local.exists() else name, streetclip)
        out[name] = ZeroShot(model, tokenizer, spec, train, top, device)
    return out


def write_reports(
    results: list[SetResult], out: Path, geo: Geolocator, ablations: str = "", reports: str = "reports"
) -> dict[str, Path]:
    """Per set its reports (``<reports>/<set>.md`` / ``.html`` and pictures) and error curve,
    and ``metrics.json`` over all sets; the HTML report of each set."""
    countries = geo.bundle.countries()
    files = {}
    for r in results:
        files[r.name] = write_report(r, out / reports, geo.image_domain, countries, ablations)["html"]
        # the holdout's curve is the DVC plot beside metrics.json; the other sets' go with their reports
        error_curve(r).to_csv(
            (out if r.name == "holdout" else out / reports) / f"error_curve_{r.name}.csv", index=False
        )
    (out / METRICS_FILE).write_text(json.dumps(metrics_json(results), indent=2))
    return files


def run_benchmark_report(paths: Paths, cfg: ReportConfig) -> list[SetResult]:
    geo = Geolocator(paths.bundle)
    lookup = geo.cell_lookup()
    locations = read_located(paths)
    train = locations[locations["split"] == "train"]
    zero_shots = zero_shot_models(
        cfg.zero_shot, train, paths.streetclip_model, paths.resolve, cfg.zero_shot_top_countries
    )
    block_km = load_config(EnrichConfig, geo.bundle.params).split.block_km  # the blocks the split dealt whole
    with open_store(paths) as store:
        images = read_images(paths)
        results = [
            evaluate_holdout(geo, locations, images, store, train, lookup, cfg, zero_shots, block_km, split, name)
            for split, name in (("test", "holdout"), ("val", "val"))
        ]
    for s in cfg.sets:
        manifest = paths.resolve(s.manifest)
        results.append(evaluate_manifest(geo, s.name, manifest, s.swap_lat_lon, train, lookup, cfg, zero_shots))
    table = paths.ablations / "ablations.md"  # make ablations' last table, included when present
    write_reports(results, paths.asset_dir(STAGE), geo, table.read_text() if table.exists() else "")
    return results
