"""model_bundle: everything inference needs in one checksummed folder (``ml.bundle``): the
model, tokenizer, geocells, prototypes, reference data, resolved params and model card."""

from __future__ import annotations

from pathlib import Path

from ml.bundle import write_bundle
from ml.config import read_params, resolve_section
from ml.model_card import model_card
from ml.paths import Paths
from ml.settings import BundleConfig
from ml.stages.geocell_model import metrics_of
from ml.stages.geocells import read_geocells
from ml.stages.prototypes import read_prototype_table, read_prototypes

STAGE = "model_bundle"
# the sections whose resolved values the bundle keeps: everything that made the model, and how
# the pipeline evaluated it (``roost evaluate`` reads that)
SECTIONS = ("raw_locations", "enriched_locations", "location_images", "captions", "geocells", "streetclip")
SECTIONS += ("geocell_model", "prototypes", "refine", "model_bundle", "benchmark_report")


def run_model_bundle(paths: Paths, cfg: BundleConfig) -> tuple[Path, str]:
    """The bundle folder and its model card."""
    raw = read_params(paths.params)
    params = {"profile": raw["profile"]} | {s: resolve_section(raw, s, paths.params) for s in SECTIONS}
    metrics = metrics_of(paths)
    cells = read_geocells(paths)
    card = model_card(params, metrics, cfg.image_domain, len(cells.assignments))
    folder = write_bundle(
        paths.bundle,
        model_folder=paths.geocell_model,
        tokenizer_folder=paths.streetclip_model,
        cells=cells,
        prototypes=read_prototypes(paths),
        prototype_table=read_prototype_table(paths),
        reference=paths.reference,
        params=params,
        metrics=metrics,
        card=card,
    )
    return folder, card
