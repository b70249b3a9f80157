"""geocells."""

import dagster as dg
import geopandas as gpd
import numpy as np

from assets.metadata import counts_table, png
from ml.data.enrich import EnrichConfig
from ml.geo.geocells import GeocellsConfig, build_cells, check_geocells, offshore_cells
from ml.geo.maps import cells_map_png
from ml.geo.reference import ReferenceData
from ml.store import read_table, write_tables
from orchestration.resources import RoostResource


@dg.asset(group_name="geocells", kinds={"geoparquet", "duckdb"}, deps=["enriched_locations"])
def geocells(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """PIGEON's semantic geocells from the train split: admin units merged and split to size
    (or, with ``builder: naive``, border-blind boxes of equal point count: the ablation)."""
    paths, cfg = roost.paths(), roost.config(GeocellsConfig)
    train = read_table(paths.asset_db("enriched_locations"), "locations", "WHERE split = 'train'")
    reference = ReferenceData(paths.reference)
    admin2 = roost.config(EnrichConfig).admin2  # the one home of the admin-2 file setting
    polygons = gpd.read_file(paths.resolve(admin2.path)).to_crs(4326) if admin2.path else None
    cells = build_cells(train, reference.admin0, reference.admin1, cfg, polygons, admin2.name_field)
    violations = check_geocells(cells, train, cfg)
    context.log.info(f"{len(cells.cells)} cells in {sum(cells.seconds.values()):.1f} s; violations {violations}")
    out = paths.asset_dir("geocells")
    out.mkdir(parents=True, exist_ok=True)
    cells.geodataframe().to_parquet(out / "geocells.parquet")
    table = cells.cells.drop(columns="geometry")
    db = write_tables(paths.asset_db("geocells"), {"cells": table, "assignments": cells.assignments})
    sizes = table["n_points"].to_numpy()
    picture = cells_map_png(cells.geodataframe(), reference.admin0, f"{len(table)} geocells")
    return dg.MaterializeResult(
        metadata={
            "builder": cfg.builder,
            "cells": len(table),
            "training_points": len(cells.assignments),
            "cells_by_kind": counts_table(table["kind"].value_counts().to_dict(), key="kind", value="cells"),
            "size_min": int(sizes.min()),
            "size_median": float(np.median(sizes)),
            "size_max": int(sizes.max()),
            "violations": dg.MetadataValue.json(violations),
            "offshore_cells": offshore_cells(cells),
            "seconds": dg.MetadataValue.json(cells.seconds),
            "map": png(picture, "geocells"),
            "path": dg.MetadataValue.path(str(db)),
        }
    )
