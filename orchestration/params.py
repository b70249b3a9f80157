"""The whole params.yaml held to every config class, once when the definitions load (kept
out of the resources that every asset imports, so that no stage's code closure holds every
config module)."""

from __future__ import annotations

from pathlib import Path

from assets.deployment import DeploymentConfig
from ml.config import check_params
from ml.landing import AutomationConfig
from ml.settings import (
    BundleConfig,
    CaptionsConfig,
    ChecksConfig,
    EnrichConfig,
    GeocellModelConfig,
    GeocellsConfig,
    ImagesConfig,
    PromotionConfig,
    PrototypesConfig,
    RawLocationsConfig,
    RefineConfig,
    ReportConfig,
    ServeConfig,
    StreetclipConfig,
)


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
        PromotionConfig,
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
