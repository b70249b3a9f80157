"""Resources: where the project lives and how its params are read."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import dagster as dg

from ml.config import load_config
from ml.paths import Paths

T = TypeVar("T")


class RoostResource(dg.ConfigurableResource):
    """The project root; every asset gets its paths and params through this one resource."""

    root: str = ""  # empty: $ROOST_ROOT, else the working directory

    def paths(self) -> Paths:
        return Paths(Path(self.root).resolve()) if self.root else Paths.from_env()

    def config(self, cls: type[T]) -> T:
        return load_config(cls, self.paths().params)
