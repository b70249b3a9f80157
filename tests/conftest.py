"""Shared fixtures: a smoke-profile project root and one shared materialization of the chain."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# The pipeline's stages (Dagster assets and DVC stages of the same names), upstream first.
STAGES = ["raw_locations", "enriched_locations", "location_images", "captions", "geocells", "streetclip"]
STAGES += ["geocell_model", "prototypes", "model_bundle", "benchmark_report", "champion"]
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


class ChainResult:
    """What the tests read of the smoke chain's run: each asset's materialization metadata
    (kept as a file, so that every pytest-xdist worker reads the one chain)."""

    success = True

    def __init__(self, metadata: dict[str, dict]):
        self.metadata = metadata

    def asset_materializations_for_node(self, node: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(metadata=self.metadata[node])]


def materialize_chain(root: Path) -> ChainResult:
    import dagster as dg

    from assets.resources import RoostResource
    from orchestration.definitions import ASSETS

    result = dg.materialize(ASSETS, resources={"roost": RoostResource(root=str(root))})
    assert result.success
    names = [a.key.to_user_string() for a in ASSETS]
    return ChainResult({n: dict(result.asset_materializations_for_node(n)[0].metadata) for n in names})


@pytest.fixture(scope="session")
def smoke_chain(request, tmp_path_factory):
    """The whole chain materialized once on the smoke profile, in-process, for every test that
    needs materialized data; under pytest-xdist once for all workers (the first to ask builds
    it under a file lock, the others read it). Tests read it and never write into it."""
    if not hasattr(request.config, "workerinput"):  # no xdist
        root = make_root(tmp_path_factory.mktemp("smoke"))
        return root, materialize_chain(root)
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / "smoke_chain"
    done = root / "chain.pickle"
    with FileLock(str(root) + ".lock"):
        if not done.exists():
            make_root(root)
            done.write_bytes(pickle.dumps(materialize_chain(root).metadata))
    return root, ChainResult(pickle.loads(done.read_bytes()))


def pytest_collection_modifyitems(config, items):
    """One test that needs the smoke chain first (under xdist its worker builds the chain at
    once), then every test that needs none (the other worker's work meanwhile), then the rest."""
    chain = [item for item in items if "smoke_chain" in getattr(item, "fixturenames", ())]
    free = [item for item in items if "smoke_chain" not in getattr(item, "fixturenames", ())]
    items[:] = chain[:1] + free + chain[1:]


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromedriver missing: `make test` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    profile = tempfile.mkdtemp(prefix="roost-chromium-")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1800,1100",
    ):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
