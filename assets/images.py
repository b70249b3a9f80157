"""location_images."""

import shutil

import dagster as dg

from assets.metadata import counts_table, png
from ml.data.images import ImageStore, contact_sheet
from ml.data.views import ImagesConfig, build_location_images
from ml.store import read_table, write_tables
from orchestration.deployment import pod_tags
from orchestration.resources import RoostResource


@dg.asset(
    group_name="images",
    kinds={"duckdb"},
    deps=["enriched_locations"],
    # the streetview source talks to an external API: retry the step on top of the client's retries
    op_tags=pod_tags("location_images"),
    retry_policy=dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL),
)
def location_images(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """Each location's views (rendered terrain or the user's files), checked and stored in shards."""
    paths, cfg = roost.paths(), roost.config(ImagesConfig)
    locations = read_table(paths.asset_db("enriched_locations"), "locations")
    shards = paths.shards
    shutil.rmtree(shards, ignore_errors=True)

    def progress(done: int, total: int) -> None:
        if done == total or done % (cfg.chunk_views * 16) < cfg.chunk_views:
            context.log.info(f"{done:,}/{total:,} views")

    result = build_location_images(locations, cfg, paths.reference, paths.root, shards, progress)
    images, rejected = result.images, result.rejected
    db = write_tables(
        paths.asset_db("location_images"),
        {
            "images": images,
            "rejected": rejected,
            "rejected_locations": result.rejected_locations,
            "panoramas": result.panoramas,  # streetview: each location's panorama and its offset
        },
    )
    store = ImageStore(shards)
    sample = images[images["location_id"].isin(images["location_id"].drop_duplicates().head(8))]
    sheet = contact_sheet([store.read(k) for k in sample["key"]], columns=max(1, cfg.views))
    store.close()
    views_per_location = images.groupby("location_id").size().value_counts().sort_index()
    return dg.MaterializeResult(
        metadata={
            "source": cfg.source,
            "locations": result.n_locations,
            "views_expected": result.views_expected,
            "views_stored": len(images),
            "views_rejected": len(rejected),
            "rejected_by_reason": counts_table(rejected["reason"].value_counts().to_dict()),
            "locations_without_views": len(result.rejected_locations),
            "locations_without_views_by_reason": counts_table(
                result.rejected_locations["reason"].value_counts().to_dict()
            ),
            **result.counts,
            "views_per_location": counts_table(
                {str(k): int(v) for k, v in views_per_location.items()}, key="views", value="locations"
            ),
            "mean_water_fraction": float(images["water_fraction"].mean()) if len(images) else 0.0,
            "shard_bytes": sum(p.stat().st_size for p in shards.glob("*.bin")),
            "contact_sheet": png(sheet, "sample views"),
            "path": dg.MetadataValue.path(str(db)),
        }
    )
