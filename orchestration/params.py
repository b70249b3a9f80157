"""The whole params.yaml held to every config class, once when the definitions load (kept
out of the resources that every asset imports, so that no stage's code closure holds every
config module)."""

from __future__ import annotations

from pathlib import Path

from assets.deployment import DeploymentConfig
from ml.bundle import BundleConfig
from ml.checks import ChecksConfig
from ml.config import check_params
from ml.data.captions import CaptionsConfig
from ml.data.enrich import EnrichConfig
from ml.data.sources import RawLocationsConfig
from ml.data.views import ImagesConfig
from ml.eval.evaluate import ReportConfig
from ml.geo.cells import GeocellsConfig
from ml.landing import AutomationConfig
from ml.refine.prototypes import PrototypesConfig
from ml.refine.refine import RefineConfig
from ml.serve.app import ServeConfig
from ml.train.contrastive import StreetclipConfig
from ml.train.geocell import GeocellModelConfig


def config_classes() -> tuple[type, ...]:
    """One config class per params.yaml section: what ``check_params`` holds the file to."""
    return (
        RawLocationsConfig,
        EnrichConfig,
        ImagesConfig,
        CaptionsConfig,
        GeocellsConfig,
        StreetclipConfig,
        GeocellModelConfig,
        PrototypesConfig,
        RefineConfig,
        BundleConfig,
        ReportConfig,
        ChecksConfig,
        AutomationConfig,
        DeploymentConfig,
        ServeConfig,
    )


_CHECKED: set[tuple[str, int]] = set()


def check_once(params: Path) -> None:
    """``check_params`` on the whole file, once per version of it in this process."""
    key = (str(params), params.stat().st_mtime_ns if params.exists() else 0)
    if key not in _CHECKED:
        check_params(params, config_classes())
        _CHECKED.add(key)
