"""Resources: where the project lives and how its params are read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import dagster as dg

from ml.config import load_config
from ml.paths import Paths

T = TypeVar("T")


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
        cfg = load_config(cls, self.paths().params)
        if self.raw_path and getattr(cls, "SECTION", "") == "raw_locations":
            cfg = replace(cfg, source=self.raw_source or cfg.source, path=self.raw_path)
        return cfg
