"""benchmark_report."""

import json

import dagster as dg
import geopandas as gpd

from assets.metadata import png
from ml.data.images import ImageStore
from ml.data.streetview import apply_panoramas
from ml.eval.evaluate import ReportConfig, evaluate_holdout, evaluate_manifest
from ml.eval.report import (
    curve_png,
    error_curve,
    markdown_table,
    metric_table,
    metrics_json,
    write_report,
    zero_shot_table,
)
from ml.eval.zeroshot import ZeroShot, load_clip
from ml.predict import Geolocator
from ml.store import read_table
from orchestration.deployment import pod_tags
from orchestration.resources import RoostResource


@dg.asset(
    group_name="evaluation",
    kinds={"html"},
    deps=["model_bundle", "enriched_locations", "location_images", "streetclip"],
    op_tags=pod_tags("benchmark_report"),
)
def benchmark_report(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """PIGEON's metrics for the bundle on the holdout split and every user set in params, and
    the zero-shot rows of the CLIP models named in params (the streetclip asset by default)."""
    paths, cfg = roost.paths(), roost.config(ReportConfig)
    geo = Geolocator(paths.bundle)
    lookup = geo.cell_lookup()
    panoramas = read_table(paths.asset_db("location_images"), "panoramas")
    locations = apply_panoramas(read_table(paths.asset_db("enriched_locations"), "locations"), panoramas)
    train = locations[locations["split"] == "train"]
    images = read_table(paths.asset_db("location_images"), "images")
    store = ImageStore(paths.shards)
    zero_shots = {}
    for name in cfg.zero_shot:
        local = paths.resolve(name)  # a folder relative to the root, else a hub id as given
        model, tokenizer, spec = load_clip(str(local) if local.exists() else name, paths.streetclip_model)
        zero_shots[name] = ZeroShot(model, tokenizer, spec, train, cfg.zero_shot_top_countries)
    results = [evaluate_holdout(geo, locations, images, store, train, lookup, cfg, zero_shots)]
    store.close()
    for s in cfg.sets:
        manifest = paths.resolve(s.manifest)
        results.append(evaluate_manifest(geo, s.name, manifest, s.swap_lat_lon, train, lookup, cfg, zero_shots))
    out = paths.asset_dir("benchmark_report")
    countries = gpd.read_parquet(paths.bundle / "reference" / "admin0_naturalearth_10m.parquet")
    table = paths.ablations / "ablations.md"  # make ablations' last table, included when present
    ablations = table.read_text() if table.exists() else ""
    metadata = {}
    for r in results:
        write_report(r, out / "reports", geo.image_domain, countries, ablations)
        error_curve(r).to_csv(out / f"error_curve_{r.name}.csv", index=False)
        table = metric_table(r)
        metadata[f"{r.name}_metrics"] = dg.MetadataValue.md(markdown_table(table))
        metadata[f"{r.name}_error_curve"] = png(curve_png(r), "cumulative error")
        if r.zero_shot:
            metadata[f"{r.name}_zero_shot"] = dg.MetadataValue.md(markdown_table(zero_shot_table(r)))
        context.log.info(f"{r.name}: {len(r.frame)} locations; median {r.metrics['median_km']['value']:.0f} km")
    (out / "metrics.json").write_text(json.dumps(metrics_json(results), indent=2))
    metadata["sets"] = ", ".join(r.name for r in results)
    metadata["path"] = dg.MetadataValue.path(str(out / "reports"))
    return dg.MaterializeResult(metadata=metadata)
