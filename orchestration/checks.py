"""Asset checks, blocking where a bad artifact must not flow on (a failed blocking check stops
the downstream assets of the same run). The logic lives in ``ml.checks``."""

import dagster as dg

from assets.resources import RoostResource
from ml.settings import ChecksConfig


def _result(outcome: tuple[bool, dict], severity: str = "error") -> dg.AssetCheckResult:
    passed, details = outcome
    level = dg.AssetCheckSeverity.WARN if severity == "warn" else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(passed=passed, severity=level, metadata={"details": dg.MetadataValue.json(details)})


def _last_metadata(context, asset: str, key: str):
    event = context.instance.get_latest_materialization_event(dg.AssetKey(asset))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return meta[key].value if key in meta else None


@dg.asset_check(
    asset="raw_locations", blocking=True, description="per batch: accepted + rejected = input rows (or photos)"
)
def raw_locations_reconcile(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks
    from ml.stages.raw_locations import read_raw_locations

    paths = roost.paths()
    tables = [read_raw_locations(paths, table) for table in ("locations", "rejected", "batches")]
    return _result(checks.raw_rows_reconcile(*tables))


@dg.asset_check(asset="enriched_locations", blocking=True, description="enriched + rejected = raw locations")
def enriched_locations_reconcile(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks
    from ml.stages.enriched_locations import read_locations
    from ml.stages.raw_locations import read_raw_locations

    paths = roost.paths()
    enriched, rejected = len(read_locations(paths)), len(read_locations(paths, table="rejected"))
    return _result(checks.rows_reconcile(enriched, rejected, len(read_raw_locations(paths)), "raw locations"))


@dg.asset_check(asset="location_images", blocking=True, description="views stored + rejected = expected")
def location_images_reconcile(context: dg.AssetCheckExecutionContext, roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks
    from ml.stages.enriched_locations import read_locations
    from ml.stages.location_images import read_images

    paths = roost.paths()
    images, rejected = read_images(paths), read_images(paths, "rejected")
    expected = _last_metadata(context, "location_images", "views_expected")
    expected = len(images) + len(rejected) if expected is None else int(expected)
    without = read_images(paths, "rejected_locations")
    return _result(checks.views_reconcile(images, rejected, without, read_locations(paths), expected))


@dg.asset_check(asset="captions", blocking=True, description="every stored view has its captions")
def captions_cover_views(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks
    from ml.stages.captions import read_captions
    from ml.stages.location_images import read_images

    paths = roost.paths()
    return _result(checks.captions_cover_views(read_captions(paths), read_images(paths)))


@dg.asset_check(asset="geocells", blocking=True, description="every training point in exactly one geocell")
def geocells_one_cell_per_point(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks
    from ml.stages.enriched_locations import read_locations
    from ml.stages.geocells import read_geocells

    paths = roost.paths()
    cells, train = read_geocells(paths), read_locations(paths, "train")
    return _result(checks.one_cell_per_training_point(cells.assignments, train["id"], len(cells.cells)))


@dg.asset_check(asset="streetclip", blocking=True, description="no NaN or inf in the weights")
def streetclip_finite(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks

    return _result(checks.finite_tensors(sorted(roost.paths().streetclip_model.glob("*.safetensors"))))


@dg.asset_check(asset="geocell_model", blocking=True, description="no NaN or inf in the weights")
def geocell_model_finite(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks

    return _result(checks.finite_tensors(sorted(roost.paths().geocell_model.glob("*.safetensors"))))


@dg.asset_check(
    asset="geocell_model",
    blocking=True,
    description="beats the no-skill baselines (always the train-set medoid; always the largest training "
    "country's medoid) on val at 750 and 2500 km, median error and GeoGuessr score",
)
def geocell_model_beats_medoid(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks
    from ml.stages.geocell_model import metrics_of

    metrics = metrics_of(roost.paths())
    severity = roost.config(ChecksConfig).baseline_severity  # params: checks
    found = {
        "train_medoid": metrics.get("val_train_medoid", {}),
        "largest_country": metrics.get("val_largest_country", {}),
    }
    return _result(checks.beats_baselines(metrics["val"], found), severity)


@dg.asset_check(asset="prototypes", blocking=True, description="no NaN or inf in the prototype embeddings")
def prototypes_finite(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks

    return _result(checks.finite_tensors(sorted(roost.paths().asset_dir("prototypes").glob("*.safetensors"))))


@dg.asset_check(asset="model_bundle", blocking=True, description="every file matches the manifest's checksum")
def model_bundle_verifies(roost: RoostResource) -> dg.AssetCheckResult:
    from ml import checks

    return _result(checks.bundle_verifies(roost.paths().bundle))


CHECKS = [
    raw_locations_reconcile,
    enriched_locations_reconcile,
    location_images_reconcile,
    captions_cover_views,
    geocells_one_cell_per_point,
    streetclip_finite,
    geocell_model_finite,
    geocell_model_beats_medoid,
    prototypes_finite,
    model_bundle_verifies,
]
