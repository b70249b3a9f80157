"""benchmark_report (``ml.stages.benchmark_report``)."""

import dagster as dg

from assets.code import code_version
from assets.deployment import pod_tags
from assets.history import versioned
from assets.metadata import png
from assets.resources import RoostResource
from ml.settings import ReportConfig


@dg.asset(
    group_name="evaluation",
    kinds={"html"},
    deps=["model_bundle", "enriched_locations", "location_images", "streetclip"],
    op_tags=pod_tags("benchmark_report"),
    code_version=code_version("benchmark_report"),
)
@versioned
def benchmark_report(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """PIGEON's metrics for the bundle on the holdout split and every user set in params, and
    the zero-shot rows of the CLIP models named in params (the streetclip asset by default) and
    the model's other ``refine.guess`` modes."""
    from ml.eval.report import curve_png, markdown_table, metric_table, rows_table
    from ml.stages.benchmark_report import run_benchmark_report

    paths, cfg = roost.paths(), roost.config(ReportConfig)
    results = run_benchmark_report(paths, cfg)
    metadata = {}
    for r in results:
        metadata[f"{r.name}_metrics"] = dg.MetadataValue.md(markdown_table(metric_table(r)))
        metadata[f"{r.name}_error_curve"] = png(curve_png(r), "cumulative error")
        if r.zero_shot:
            metadata[f"{r.name}_zero_shot"] = dg.MetadataValue.md(markdown_table(rows_table(r.zero_shot, "zero-shot ")))
        if r.guesses:
            metadata[f"{r.name}_other_guesses"] = dg.MetadataValue.md(markdown_table(rows_table(r.guesses, "guess: ")))
        context.log.info(f"{r.name}: {len(r.frame)} locations; median {r.metrics['median_km']['value']:.0f} km")
    metadata["sets"] = ", ".join(r.name for r in results)
    metadata["path"] = dg.MetadataValue.path(str(paths.asset_dir("benchmark_report") / "reports"))
    return dg.MaterializeResult(metadata=metadata)
