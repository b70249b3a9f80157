"""Resources: where the project lives and how its params are read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import dagster as dg

from ml.config import check_params, load_config
from ml.paths import Paths

T = TypeVar("T")


def config_classes() -> tuple[type, ...]:
    """One config class per params.yaml section: what ``check_params`` holds the file to."""
    from ml.bundle import BundleConfig
    from ml.checks import ChecksConfig
    from ml.data.captions import CaptionsConfig
    from ml.data.enrich import EnrichConfig
    from ml.data.sources import RawLocationsConfig
    from ml.data.views import ImagesConfig
    from ml.eval.evaluate import ReportConfig
    from ml.geo.geocells import GeocellsConfig
    from ml.landing import AutomationConfig
    from ml.refine.prototypes import PrototypesConfig
    from ml.refine.refine import RefineConfig
    from ml.train.contrastive import StreetclipConfig
    from ml.train.geocell import GeocellModelConfig
    from orchestration.deployment import DeploymentConfig

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
    )


_CHECKED: set[tuple[str, int]] = set()


def check_once(params: Path) -> None:
    """``check_params`` on the whole file, once per version of it in this process."""
    key = (str(params), params.stat().st_mtime_ns if params.exists() else 0)
    if key not in _CHECKED:
        check_params(params, config_classes())
        _CHECKED.add(key)


class RoostResource(dg.ConfigurableResource):
    """The project root; every asset gets its paths and params through this one resource."""

    root: str = ""  # empty: $ROOST_ROOT, else the working directory
    # A run's own input (the new-data sensor sets these): raw_locations reads this source and
    # path instead of params.yaml's. Empty: params.yaml.
    raw_source: str = ""
    raw_path: str = ""

    def paths(self) -> Paths:
        return Paths(Path(self.root).resolve()) if self.root else Paths.from_env()

    def config(self, cls: type[T]) -> T:
        """``cls``'s section under the active profile, after checking the whole file."""
        check_once(self.paths().params)
        cfg = load_config(cls, self.paths().params)
        if self.raw_path and getattr(cls, "SECTION", "") == "raw_locations":
            cfg = replace(cfg, source=self.raw_source or cfg.source, path=self.raw_path)
        return cfg
