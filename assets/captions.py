"""captions."""

import dagster as dg

from assets.metadata import counts_table
from ml.data.captions import CaptionsConfig, caption_views
from ml.store import read_table, write_tables
from orchestration.resources import RoostResource


@dg.asset(group_name="images", kinds={"duckdb"}, deps=["location_images", "enriched_locations"])
def captions(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """PIGEON's synthetic captions for every stored view, for StreetCLIP pretraining."""
    paths, cfg = roost.paths(), roost.config(CaptionsConfig)
    views = read_table(paths.asset_db("location_images"), "images")
    locations = read_table(paths.asset_db("enriched_locations"), "locations")
    table = caption_views(views, locations, cfg)
    db = write_tables(paths.asset_db("captions"), {"captions": table})
    context.log.info(f"{len(table):,} captions for {len(views):,} views")
    sample = table.sample(min(12, len(table)), random_state=0)["text"] if len(table) else []
    return dg.MaterializeResult(
        metadata={
            "views": len(views),
            "captions": len(table),
            "captions_per_split": counts_table(table["split"].value_counts().to_dict(), key="split", value="captions"),
            "mean_words": float(table["text"].str.split().str.len().mean()) if len(table) else 0.0,
            "sample": dg.MetadataValue.md("\n".join(f"- {t}" for t in sample)),
            "path": dg.MetadataValue.path(str(db)),
        }
    )
