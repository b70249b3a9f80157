"""The terrain renderer: known places look like what the rasters hold there, and nothing else."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ml.config import load_config
from ml.data.terrain import BUILT_UP, PALETTE, TerrainRenderer, view_seed
from ml.geo.reference import ReferenceData
from ml.settings import ImagesConfig, NoiseConfig

REPO = Path(__file__).resolve().parents[1]
BARREN, EVERGREEN_BROADLEAF, URBAN, WATER = 16, 2, 13, 0


@pytest.fixture(scope="module")
def reference():
    return ReferenceData(REPO / "data" / "reference")


@pytest.fixture(scope="module")
def renderer(reference):
    cfg = load_config(ImagesConfig, REPO / "params.yaml")
    return TerrainRenderer(reference, cfg.terrain, 64)


@pytest.fixture(scope="module")
def clean(reference):
    """No photometric noise: known answers are about what the rasters show."""
    terrain = load_config(ImagesConfig, REPO / "params.yaml").terrain
    return TerrainRenderer(reference, replace(terrain, noise=NoiseConfig(0, 0, 0, 0)), 64)


def render4(renderer, lat, lon, seed=7):
    return renderer.render([lat] * 4, [lon] * 4, [0, 90, 180, 270], [seed] * 4, with_classes=True)


def dominant(classes):
    return np.bincount(classes.ravel(), minlength=18).argmax()


def nearest_palette(img):
    d = ((img[..., None, :].astype(np.float32) - PALETTE[None, None]) ** 2).sum(-1)
    return d.argmin(-1)


def test_sahara_is_barren(clean):
    images, _, classes = render4(clean, 23.5, 13.0)
    assert dominant(classes) == BARREN
    assert (nearest_palette(images[0]) == BARREN).mean() > 0.5  # the pixels show it too


def test_amazon_is_evergreen_forest(clean):
    _, _, classes = render4(clean, -3.5, -62.0)
    assert dominant(classes) == EVERGREEN_BROADLEAF


def test_paris_contains_built_up(clean):
    images, _, classes = render4(clean, 48.8566, 2.3522)
    assert (classes == URBAN).mean() > 0.02
    built = np.minimum(
        np.abs(images.astype(int) - BUILT_UP.astype(int)).sum(-1), np.abs(images.astype(int) - PALETTE[URBAN]).sum(-1)
    )
    assert (built < 45).mean() > 0.02  # urban cover and town spots are visible in the pixels


def test_amsterdam_is_mostly_land(clean):
    # Below sea level on the 5' grid: only elevation below -50 m counts as water.
    _, water, _ = render4(clean, 52.37, 4.89)
    assert water[1] < 0.5 and water[2] < 0.5  # east and south of the city


def test_headings_differ_pairwise(renderer):
    images, _, _ = render4(renderer, 45.76, 4.83)  # Lyon
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(images[i].astype(int) - images[j].astype(int)).mean() > 2, (i, j)


def test_same_seed_byte_identical(renderer):
    a, _, _ = render4(renderer, 35.68, 139.69, seed=123)
    b, _, _ = render4(renderer, 35.68, 139.69, seed=123)
    c, _, _ = render4(renderer, 35.68, 139.69, seed=124)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_no_coordinate_leaks_into_open_ocean(renderer):
    a, wa, _ = render4(renderer, 0.0, -150.0, seed=5)
    b, wb, _ = render4(renderer, -40.0, -100.0, seed=5)
    assert (wa == 1).all() and (wb == 1).all()
    assert a.tobytes() == b.tobytes()


def test_view_seed_depends_on_identity_not_place():
    assert view_seed(0, "a", 1) == view_seed(0, "a", 1)
    assert len({view_seed(0, "a", 1), view_seed(0, "a", 2), view_seed(0, "b", 1), view_seed(1, "a", 1)}) == 4
