"""captions (``ml.stages.captions``)."""

import dagster as dg

from assets.code import code_version
from assets.history import versioned
from assets.metadata import counts_table
from assets.resources import RoostResource
from ml.settings import CaptionsConfig


@dg.asset(
    group_name="images",
    kinds={"duckdb"},
    deps=["location_images", "enriched_locations"],
    code_version=code_version("captions"),
)
@versioned
def captions(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """PIGEON's synthetic captions for every stored view, for StreetCLIP pretraining."""
    from ml.stages.captions import run_captions

    paths, cfg = roost.paths(), roost.config(CaptionsConfig)
    table, views = run_captions(paths, cfg)
    context.log.info(f"{len(table):,} captions for {views:,} views")
    sample = table.sample(min(12, len(table)), random_state=0)["text"] if len(table) else []
    return dg.MaterializeResult(
        metadata={
            "views": views,
            "captions": len(table),
            "captions_per_split": counts_table(table["split"].value_counts().to_dict(), key="split", value="captions"),
            "mean_words": float(table["text"].str.split().str.len().mean()) if len(table) else 0.0,
            "sample": dg.MetadataValue.md("\n".join(f"- {t}" for t in sample)),
            "path": dg.MetadataValue.path(str(paths.asset_db("captions"))),
        }
    )
