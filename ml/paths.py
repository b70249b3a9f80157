"""Where every file lives. Nothing else builds data paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """Paths under one project root (the folder holding params.yaml and dvc.yaml)."""

    root: Path

    @classmethod
    def from_env(cls) -> Paths:
        """ROOST_ROOT if set, else the working directory (DVC and make run from the root)."""
        return cls(Path(os.environ.get("ROOST_ROOT") or os.getcwd()).resolve())

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def reference(self) -> Path:
        return self.root / "data" / "reference"

    def asset_dir(self, asset: str) -> Path:
        """The folder an asset owns: DVC's ``outs`` for its stage."""
        return self.root / "data" / asset

    def asset_db(self, asset: str) -> Path:
        """The DuckDB file an asset writes (one writer per file)."""
        return self.asset_dir(asset) / f"{asset}.duckdb"

    @property
    def shards(self) -> Path:
        """location_images' view shards."""
        return self.asset_dir("location_images") / "shards"

    @property
    def streetclip_model(self) -> Path:
        return self.asset_dir("streetclip") / "model"

    @property
    def geocell_model(self) -> Path:
        return self.asset_dir("geocell_model") / "model"

    @property
    def bundle(self) -> Path:
        return self.asset_dir("model_bundle") / "bundle"

    @property
    def champion(self) -> Path:
        """The promoted bundle: what ``roost predict`` and ``roost serve`` use by default."""
        return self.asset_dir("champion") / "bundle"

    @property
    def verdicts(self) -> Path:
        """The promotion gate's verdicts, one JSON line each, newest last."""
        return self.asset_dir("champion") / "verdicts.jsonl"

    @property
    def ablations(self) -> Path:
        """``make ablations``' table (not a DVC stage: a summary of DVC experiments)."""
        return self.root / "data" / "ablations"

    @property
    def tuning(self) -> Path:
        """``ml.eval.tune``'s records: per param the val table, the pick, then test (not a DVC stage)."""
        return self.root / "data" / "tuning"

    def cache_dir(self, asset: str) -> Path:
        """Survives reruns: outside DVC's outs, ignored by git and DVC."""
        return self.root / "data" / "cache" / asset

    def resolve(self, path: str | Path) -> Path:
        """A user path from params: absolute as given, else relative to the root."""
        path = Path(path)
        return path if path.is_absolute() else self.root / path
