"""raw_locations and enriched_locations."""

import dagster as dg

from assets.metadata import counts_table
from ml.data.sources import RawLocationsConfig, load_raw_locations
from ml.store import write_tables
from orchestration.resources import RoostResource


@dg.asset(group_name="locations", kinds={"duckdb"})
def raw_locations(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """Input locations from the configured source; every row accepted or rejected with a reason."""
    paths, cfg = roost.paths(), roost.config(RawLocationsConfig)
    result = load_raw_locations(cfg, paths.resolve(cfg.path), paths.root)
    db = write_tables(paths.asset_db("raw_locations"), {"locations": result.locations, "rejected": result.rejected})
    context.log.info(f"{len(result.locations)} accepted, {len(result.rejected)} rejected of {result.n_input} rows")
    return dg.MaterializeResult(
        metadata={
            "source": cfg.source,
            "input": str(cfg.path),
            "input_rows": result.n_input,
            "accepted": len(result.locations),
            "rejected": len(result.rejected),
            "rejected_by_reason": counts_table(result.reason_counts()),
            "path": dg.MetadataValue.path(str(db)),
        }
    )
