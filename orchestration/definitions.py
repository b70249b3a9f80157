"""The one Definitions object: assets, asset checks, resources, jobs, schedule and sensors."""

from __future__ import annotations

import dagster as dg

from assets.bundle import model_bundle, prototypes
from assets.captions import captions
from assets.champion import champion
from assets.deployment import executor
from assets.geocells import geocells
from assets.images import location_images
from assets.locations import enriched_locations, raw_locations
from assets.models import geocell_model, streetclip
from assets.report import benchmark_report
from assets.resources import RoostResource
from ml.config import load_config
from ml.landing import AutomationConfig
from ml.paths import Paths
from orchestration.automation import landing_sensor, retrain_schedule, run_failure_summary
from orchestration.checks import CHECKS
from orchestration.params import check_once

ASSETS = [
    raw_locations,
    enriched_locations,
    location_images,
    captions,
    geocells,
    streetclip,
    geocell_model,
    prototypes,
    model_bundle,
    benchmark_report,
    champion,
]

roost_chain = dg.define_asset_job("roost_chain", selection=dg.AssetSelection.all(), description="The whole chain.")

ROOT = Paths.from_env()
check_once(ROOT.params)  # the whole params.yaml, every profile: a typo anywhere stops here, named
AUTOMATION = load_config(AutomationConfig, ROOT.params)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    resources={"roost": RoostResource()},
    jobs=[roost_chain],
    schedules=[retrain_schedule(roost_chain, AUTOMATION)],
    sensors=[landing_sensor(roost_chain, AUTOMATION, ROOT), run_failure_summary],
    executor=executor(),  # ROOST_DEPLOYMENT: local (Dagster's default) or k8s (k8s_job_executor)
)
