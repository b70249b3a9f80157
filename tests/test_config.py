from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest
import yaml

from ml.config import ParamsError, check_params, load_config, resolve_section
from tests.conftest import REPO


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


def test_every_section_resolves_under_every_profile():
    """All 14 sections of the repository's params.yaml, each under each profile."""
    from orchestration.params import config_classes

    repo = yaml.safe_load((REPO / "params.yaml").read_text())
    classes = config_classes()
    assert sorted(c.SECTION for c in classes) == sorted(k for k in repo if k != "profile")
    check_params(REPO / "params.yaml", classes)  # raises, naming the profile, section and key
    smoke = {**repo, "profile": "smoke"}
    assert (
        resolve_section(smoke, "streetclip", "params.yaml")["epochs"]
        == repo["streetclip"]["profiles"]["smoke"]["epochs"]
    )


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p["streetclip"]["profiles"]["pigeotto"].update(bach_size=8), "(profile pigeotto): streetclip"),
        (lambda p: p["geocells"]["optics"].update(xii=1), "unknown key(s) ['xii']"),
        (lambda p: p.update(refinee={"top_k": 3}), "unknown section(s) ['refinee']"),
        (lambda p: p["geocells"]["profiles"].update(pigoen={}), "unknown profile(s) ['pigoen']"),
    ],
)
def test_a_typo_anywhere_is_an_error_naming_the_key(tmp_path, edit, message):
    from orchestration.params import config_classes

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(params)
    with pytest.raises(ParamsError) as e:
        check_params(write(tmp_path, params), config_classes())
    assert message in str(e.value)
    if "pigeotto" in message:
        assert "bach_size" in str(e.value)


def test_the_base_values_are_the_default_profiles():
    """The number on a line of params.yaml is the number `make run` (the default profile) uses:
    no section overrides anything for the default profile."""
    repo = yaml.safe_load((REPO / "params.yaml").read_text())
    assert repo["profile"] == "default"
    overridden = [s for s, v in repo.items() if isinstance(v, dict) and "default" in (v.get("profiles") or {})]
    assert overridden == []


def test_the_paper_profiles_keep_the_papers_smoothing_and_views():
    """The default's tau and view draw (chosen for its sparse terrain data) must not leak into
    the paper's settings: PIGEON's 75 km, PIGEOTTO's 65 km (DESIGN: haversine smoothing), and
    every view of a location in each training batch."""
    repo = yaml.safe_load((REPO / "params.yaml").read_text())
    for profile, tau in (("pigeon", 75), ("pigeotto", 65)):
        section = resolve_section({**repo, "profile": profile}, "geocell_model", "params.yaml")
        assert section["tau_km"] == tau, profile
        assert section["train_views"] == 0, profile
