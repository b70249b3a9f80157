"""Shared fixtures: a smoke-profile project root and one shared materialization of the chain."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# ROOST_TEST_SEED=N reseeds every seeded section of the test roots (sampling, split, render
# noise, captions, training, bootstrap): the suite must pass whatever the seed.
TEST_SEED = int(os.environ.get("ROOST_TEST_SEED", "0"))


def reseed(values, seed: int):
    """Every ``seed`` key in a params mapping, at any depth, set to ``seed``."""
    if isinstance(values, dict):
        return {k: (seed if k == "seed" else reseed(v, seed)) for k, v in values.items()}
    return values


def make_root(tmp: Path, profile: str = "smoke", overrides: dict | None = None) -> Path:
    """A project root in ``tmp``: params.yaml at ``profile`` (plus section overrides) and the
    repository's reference data linked in."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    if TEST_SEED:
        params = reseed(params, TEST_SEED)
    params["profile"] = profile
    for section, values in (overrides or {}).items():
        params[section] = {**params[section], **values}
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp / "data").mkdir(exist_ok=True)
    ref = tmp / "data" / "reference"
    if not ref.exists():
        ref.symlink_to(REPO / "data" / "reference")
    return tmp


@pytest.fixture(scope="session")
def smoke_chain(tmp_path_factory):
    """The whole chain materialized once on the smoke profile, in-process, for every test that
    needs materialized data."""
    import dagster as dg

    from orchestration.definitions import ASSETS
    from orchestration.resources import RoostResource

    root = make_root(tmp_path_factory.mktemp("smoke"))
    result = dg.materialize(ASSETS, resources={"roost": RoostResource(root=str(root))})
    assert result.success
    return root, result
