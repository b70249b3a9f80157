"""raw_locations and enriched_locations (``ml.stages.raw_locations``, ``ml.stages.enriched_locations``)."""

import dagster as dg

from assets.code import code_version
from assets.history import versioned
from assets.metadata import counts_table, frame_table, makeup_table, png
from assets.resources import RoostResource
from ml.landing import AutomationConfig
from ml.settings import EnrichConfig, RawLocationsConfig


@dg.asset(group_name="locations", kinds={"duckdb"}, code_version=code_version("raw_locations"))
@versioned
def raw_locations(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """The corpus: the configured source plus every batch landed in ``automation.landing``; every
    row accepted or rejected with a reason (duplicates of earlier batches included)."""
    from ml.stages.raw_locations import run_raw_locations

    paths, cfg = roost.paths(), roost.config(RawLocationsConfig)
    landing = roost.config(AutomationConfig).landing
    result = run_raw_locations(paths, cfg, landing)
    batches = result.tables["batches"]
    context.log.info(
        f"{len(result.locations)} accepted, {len(result.rejected)} rejected of {result.n_input} rows "
        f"in {len(batches)} batch(es): "
        + "; ".join(f"{b.batch} {b.locations}+{b.rejected}" for b in batches.itertuples())
    )
    return dg.MaterializeResult(
        metadata={
            "source": cfg.source,
            "input": str(cfg.path),
            "landing": landing,
            "input_rows": result.n_input,
            "accepted": len(result.locations),
            "rejected": len(result.rejected),
            "rejected_by_reason": counts_table(result.reason_counts()),
            "by_batch": frame_table(batches.drop(columns=["path"])),
            **result.counts,
            "path": dg.MetadataValue.path(str(paths.asset_db("raw_locations"))),
        }
    )


@dg.asset(
    group_name="locations",
    kinds={"duckdb"},
    deps=["raw_locations"],
    code_version=code_version("enriched_locations"),
)
@versioned
def enriched_locations(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """Country, admin-1, town, climate, land cover, elevation, population and the spatial split."""
    from ml.stages.enriched_locations import run_enriched_locations

    paths, cfg = roost.paths(), roost.config(EnrichConfig)
    run = run_enriched_locations(paths, cfg)
    result, locations = run.result, run.result.locations
    sizes, makeup = result.split_sizes(), result.makeup()
    context.log.info(
        f"split sizes {sizes}; val/test make-up: largest continent gap {makeup['largest_continent_gap']} points, "
        f"{makeup['largest_country']} gap {makeup['largest_country_share_gap']}; {len(result.rejected)} rejected; "
        f"timings {result.seconds}"
    )
    countries = locations["country_name"].value_counts()
    top = {str(k): int(v) for k, v in countries.head(20).items()}
    if len(countries) > 20:
        top[f"({len(countries) - 20} other countries)"] = int(countries.iloc[20:].sum())
    return dg.MaterializeResult(
        metadata={
            "input_rows": result.n_input,
            "accepted": len(locations),
            "rejected": len(result.rejected),
            "rejected_by_reason": counts_table(result.rejected["reason"].value_counts().to_dict()),
            "split_sizes": counts_table(sizes, key="split", value="locations"),
            "split_makeup": makeup_table(makeup),
            "largest_continent_gap": makeup["largest_continent_gap"],
            "largest_country_share_gap": makeup["largest_country_share_gap"],
            "countries": len(countries),
            "country_share": float(locations["country"].notna().mean()) if len(locations) else 0.0,
            "admin1_share": float(locations["adm1_code"].notna().mean()) if len(locations) else 0.0,
            "country_histogram": counts_table(top, key="country", value="locations"),
            "map": png(run.map_png, "locations by split"),
            "seconds": dg.MetadataValue.json(result.seconds),
            "path": dg.MetadataValue.path(str(paths.asset_db("enriched_locations"))),
        }
    )
