"""The ablations' params overrides reach the value the active profile resolves to."""

from pathlib import Path

from ml.config import read_params, resolve_section
from ml.eval.ablations import VARIANTS, apply_settings, profile_overrides

REPO = Path(__file__).resolve().parents[1]


def test_a_key_the_profile_overrides_is_overridden_there_too():
    params = {"profile": "default", "streetclip": {"epochs": 2, "lr": 0.1, "profiles": {"default": {"epochs": 1}}}}
    settings = profile_overrides(params, ["streetclip.epochs=0", "streetclip.lr=0.5"])
    assert settings == ["streetclip.epochs=0", "streetclip.profiles.default.epochs=0", "streetclip.lr=0.5"]
    assert resolve_section(apply_settings(params, ["streetclip.epochs=0"]), "streetclip")["epochs"] == 1  # the old bug
    assert resolve_section(apply_settings(params, settings), "streetclip") == {"epochs": 0, "lr": 0.5}


def test_every_variant_changes_the_resolved_params_of_this_repo():
    params = read_params(REPO / "params.yaml")
    for name, (_, settings) in VARIANTS.items():
        changed = apply_settings(params, profile_overrides(params, settings))
        for setting in settings:
            path, _, value = setting.partition("=")
            section, *keys = path.split(".")
            node = resolve_section(changed, section)
            for key in keys:
                node = node[key]
            assert str(node).lower() == value.lower() or node == float(value), (name, setting, node)
