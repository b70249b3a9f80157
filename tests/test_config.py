from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest
import yaml

from ml.config import ParamsError, load_config
from ml.data.sources import RawLocationsConfig


@dataclass(frozen=True)
class Inner:
    km: float
    shares: dict[str, float]


@dataclass(frozen=True)
class DemoConfig:
    SECTION: ClassVar[str] = "demo"
    mode: Literal["a", "b"]
    n: int
    inner: Inner


def write(tmp_path, params):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    return p


BASE = {
    "mode": "a",
    "n": 10,
    "inner": {"km": 1, "shares": {"train": 0.8, "test": 0.2}},
    "profiles": {"smoke": {"n": 2, "inner": {"km": 50}}},
}


def test_profile_overrides_deep_merge(tmp_path):
    cfg = load_config(DemoConfig, write(tmp_path, {"profile": "smoke", "demo": BASE}))
    assert cfg == DemoConfig(mode="a", n=2, inner=Inner(km=50.0, shares={"train": 0.8, "test": 0.2}))
    cfg = load_config(DemoConfig, write(tmp_path, {"profile": "default", "demo": BASE}))
    assert cfg.n == 10 and cfg.inner.km == 1.0


@pytest.mark.parametrize(
    "params, message",
    [
        ({"profile": "tiny", "demo": BASE}, "profile is 'tiny'"),
        ({"profile": "smoke"}, "section 'demo' is missing"),
        ({"profile": "smoke", "demo": {**BASE, "extra": 1}}, "unknown key(s) ['extra']"),
        ({"profile": "default", "demo": {k: v for k, v in BASE.items() if k != "n"}}, "demo.n is missing"),
        ({"profile": "smoke", "demo": {**BASE, "mode": "c"}}, "demo.mode is 'c'"),
        ({"profile": "default", "demo": {**BASE, "n": "ten"}}, "demo.n: expected int"),
    ],
)
def test_bad_params_name_the_key(tmp_path, params, message):
    with pytest.raises(ParamsError) as e:
        load_config(DemoConfig, write(tmp_path, params))
    assert message in str(e.value)


def test_repository_params_load_for_every_profile(tmp_path):
    from pathlib import Path

    repo = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for profile in ("smoke", "default", "pigeon", "pigeotto"):
        cfg = load_config(RawLocationsConfig, write(tmp_path, {**repo, "profile": profile}))
        assert cfg.source in ("default", "manifest")
