"""The one Definitions object: assets, resources, jobs."""

from __future__ import annotations

import dagster as dg

from assets.bundle import model_bundle, prototypes
from assets.captions import captions
from assets.geocells import geocells
from assets.images import location_images
from assets.locations import enriched_locations, raw_locations
from assets.models import geocell_model, streetclip
from assets.report import benchmark_report
from orchestration.resources import RoostResource

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
]

roost_chain = dg.define_asset_job("roost_chain", selection=dg.AssetSelection.all(), description="The whole chain.")

defs = dg.Definitions(
    assets=ASSETS,
    resources={"roost": RoostResource()},
    jobs=[roost_chain],
)
