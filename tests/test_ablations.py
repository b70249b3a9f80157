"""The ablations' params overrides reach the value the active profile resolves to."""

from pathlib import Path

from ml.config import read_params, resolve_section
from ml.eval.ablations import VARIANTS, profile_overrides

REPO = Path(__file__).resolve().parents[1]


def _apply(params: dict, settings: list[str]) -> dict:
    """What ``dvc exp run -S`` does to params.yaml (values as YAML scalars)."""
    import copy

    import yaml

    out = copy.deepcopy(params)
    for setting in settings:
        path, _, value = setting.partition("=")
        *parents, last = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = yaml.safe_load(value)
    return out


def test_a_key_the_profile_overrides_is_overridden_there_too():
    params = {"profile": "default", "streetclip": {"epochs": 2, "lr": 0.1, "profiles": {"default": {"epochs": 1}}}}
    settings = profile_overrides(params, ["streetclip.epochs=0", "streetclip.lr=0.5"])
    assert settings == ["streetclip.epochs=0", "streetclip.profiles.default.epochs=0", "streetclip.lr=0.5"]
    assert resolve_section(_apply(params, ["streetclip.epochs=0"]), "streetclip")["epochs"] == 1  # the old bug
    assert resolve_section(_apply(params, settings), "streetclip") == {"epochs": 0, "lr": 0.5}


def test_every_variant_changes_the_resolved_params_of_this_repo():
    params = read_params(REPO / "params.yaml")
    for name, (_, settings) in VARIANTS.items():
        changed = _apply(params, profile_overrides(params, settings))
        for setting in settings:
            path, _, value = setting.partition("=")
            section, *keys = path.split(".")
            node = resolve_section(changed, section)
            for key in keys:
                node = node[key]
            assert str(node).lower() == value.lower() or node == float(value), (name, setting, node)
