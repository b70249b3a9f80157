"""champion (``ml.stages.champion``): the promotion gate between model_bundle and what users get."""

import dagster as dg

from assets.code import code_version
from assets.history import versioned
from assets.resources import RoostResource
from ml.settings import PromotionConfig


@dg.asset(
    group_name="models",
    kinds={"folder"},
    deps=["model_bundle", "benchmark_report", "enriched_locations", "location_images"],
    code_version=code_version("champion"),
)
@versioned
def champion(context: dg.AssetExecutionContext, roost: RoostResource) -> dg.MaterializeResult:
    """The promotion gate: the champion bundle re-scored on the challenger's holdout; the
    challenger replaces it only when not worse beyond ``promotion.tolerance``."""
    from ml.stages.champion import GATED, run_champion

    paths, cfg = roost.paths(), roost.config(PromotionConfig)
    v = run_champion(paths, cfg)
    rows = [
        f"| {k} | {v.challenger[k]['value']:.4g} | "
        + (f"{v.champion[k]['value']:.4g}" if v.champion else "-")
        + f" | {v.tolerance.get(k, 0):.4g} |"
        for k in GATED
    ]
    table = "| metric | challenger | champion | tolerance |\n|---|---|---|---|\n" + "\n".join(rows)
    (context.log.warning if v.forced or not v.promoted else context.log.info)(f"{v.reason}\n{table}")
    return dg.MaterializeResult(
        metadata={
            "verdict": "promoted" if v.promoted else "refused",
            "reason": v.reason,
            "forced": v.forced,
            "figures": dg.MetadataValue.md(f"{v.reason} ({v.n} holdout locations)\n\n{table}"),
            "challenger_bundle": v.challenger_id,
            "champion_bundle": v.challenger_id if v.promoted else v.champion_id,
            "path": dg.MetadataValue.path(str(paths.champion)),
        }
    )
