"""location_images (``ml.stages.location_images``)."""

import dagster as dg

from assets.code import code_version
from assets.deployment import pod_tags
from assets.history import versioned
from assets.metadata import counts_table, png
from assets.resources import RoostResource
from ml.settings import ImagesConfig


@dg.asset(
    group_name="images",
    kinds={"duckdb"},
    deps=["enriched_locations"],
    # the streetview source talks to an external API: retry the step on top of the client's retries
    op_tags=pod_tags("location_images"),
    retry_policy=dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL),
    code_version=code_version("location_images"),
)
@versioned
def location_images(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """Each location's views (rendered terrain or the user's files), checked and stored in shards."""
    from ml.stages.location_images import run_location_images

    paths, cfg = roost.paths(), roost.config(ImagesConfig)

    def progress(done: int, total: int) -> None:
        if done == total or done % (cfg.chunk_views * 16) < cfg.chunk_views:
            context.log.info(f"{done:,}/{total:,} views")

    run = run_location_images(paths, cfg, progress)
    result = run.result
    images, rejected, without = result.images, result.rejected, result.rejected_locations
    views_per_location = images.groupby("location_id").size().value_counts().sort_index()
    return dg.MaterializeResult(
        metadata={
            "source": cfg.source,
            "locations": result.n_locations,
            "views_expected": result.views_expected,
            "views_stored": len(images),
            "views_rejected": len(rejected),
            "rejected_by_reason": counts_table(rejected["reason"].value_counts().to_dict()),
            "locations_without_views": len(without),
            "locations_without_views_by_reason": counts_table(without["reason"].value_counts().to_dict()),
            **result.counts,
            "views_per_location": counts_table(
                {str(k): int(v) for k, v in views_per_location.items()}, key="views", value="locations"
            ),
            "mean_water_fraction": float(images["water_fraction"].mean()) if len(images) else 0.0,
            "shard_bytes": run.shard_bytes,
            "contact_sheet": png(run.contact_sheet_png, "sample views"),
            "path": dg.MetadataValue.path(str(paths.asset_db("location_images"))),
        }
    )
