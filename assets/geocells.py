"""geocells (``ml.stages.geocells``)."""

import dagster as dg
import numpy as np

from assets.code import code_version
from assets.history import versioned
from assets.metadata import counts_table, png
from assets.resources import RoostResource
from ml.settings import EnrichConfig, GeocellsConfig


@dg.asset(
    group_name="geocells",
    kinds={"geoparquet", "duckdb"},
    deps=["enriched_locations"],
    code_version=code_version("geocells"),
)
@versioned
def geocells(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """PIGEON's semantic geocells from the train split: admin units merged and split to size
    (or, with ``builder: naive``, border-blind boxes of equal point count: the ablation)."""
    from ml.stages.geocells import run_geocells

    paths, cfg = roost.paths(), roost.config(GeocellsConfig)
    run = run_geocells(paths, cfg, roost.config(EnrichConfig).admin2)  # the one home of the admin-2 file setting
    cells, table = run.cells, run.cells.cells
    context.log.info(f"{len(table)} cells in {sum(cells.seconds.values()):.1f} s; violations {run.violations}")
    sizes = table["n_points"].to_numpy()
    return dg.MaterializeResult(
        metadata={
            "builder": cfg.builder,
            "cells": len(table),
            "training_points": len(cells.assignments),
            "cells_by_kind": counts_table(table["kind"].value_counts().to_dict(), key="kind", value="cells"),
            "size_min": int(sizes.min()),
            "size_median": float(np.median(sizes)),
            "size_max": int(sizes.max()),
            "violations": dg.MetadataValue.json(run.violations),
            "offshore_cells": run.offshore_cells,
            "seconds": dg.MetadataValue.json(cells.seconds),
            "map": png(run.map_png, "geocells"),
            "path": dg.MetadataValue.path(str(paths.asset_db("geocells"))),
        }
    )
