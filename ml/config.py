"""The one loader from ``params.yaml`` to typed configs.

``params.yaml`` holds a top-level ``profile`` key and one section per stage. A section may
carry a ``profiles`` mapping whose entry for the active profile is deep-merged over the
section's base values. DVC tracks a stage's ``params`` by section: a change inside a section
reruns the stages that list it (and what depends on their outputs). Every stage also lists
``profile``, so switching the profile reruns every stage: a profile is a different run of the
whole chain, and a stage cannot tell from its own section whether the switch touched it.

Config dataclasses declare the section they read (``SECTION``) and have no defaults: the
values live in ``params.yaml`` alone.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

PROFILES = ("smoke", "default", "pigeon", "pigeotto")

T = TypeVar("T")


class ParamsError(ValueError):
    """params.yaml is missing a key, has an unknown one, or a value of the wrong type."""


def read_params(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found (run from the repository root)")
    with path.open() as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return params


def active_profile(params: dict[str, Any], path: str | Path = "params.yaml") -> str:
    profile = params.get("profile")
    if profile not in PROFILES:
        raise ParamsError(f"{path}: profile is {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_section(params: dict[str, Any], section: str, path: str | Path = "params.yaml"):
    """The section's values under the active profile, as a plain dict."""
    profile = active_profile(params, path)
    if section not in params:
        raise ParamsError(f"{path}: section {section!r} is missing")
    values = dict(params[section] or {})
    overrides = values.pop("profiles", None) or {}
    unknown = set(overrides) - set(PROFILES)
    if unknown:
        raise ParamsError(f"{path}: {section}.profiles has unknown profile(s) {sorted(unknown)}")
    return deep_merge(values, overrides.get(profile) or {})


def check_params(params_path: str | Path, classes) -> None:
    """The whole file against every config class: no unknown section or key, and every
    section resolves under every profile (a typo in an override that the active profile does
    not use is still an error). ``classes``: one config class per section."""
    params = read_params(params_path)
    active_profile(params, params_path)
    known = {cls.SECTION: cls for cls in classes}
    unknown = sorted(set(params) - set(known) - {"profile"})
    if unknown:
        raise ParamsError(f"{params_path}: unknown section(s) {unknown}; known: {sorted(known)}")
    for section, cls in known.items():
        for profile in PROFILES:
            values = resolve_section({**params, "profile": profile}, section, params_path)
            from_dict(cls, values, f"{params_path} (profile {profile}): {section}")


def load_config(cls: type[T], params_path: str | Path = "params.yaml") -> T:
    """Read ``cls.SECTION`` from params_path under the active profile into ``cls``."""
    params = read_params(params_path)
    return from_dict(cls, resolve_section(params, cls.SECTION, params_path), f"{params_path}: {cls.SECTION}")


def from_dict(cls: type[T], values: dict[str, Any], where: str) -> T:
    if not isinstance(values, dict):
        raise ParamsError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(values) - set(fields)
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name not in values:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise ParamsError(f"{where}.{name} is missing")
        kwargs[name] = _coerce(hints[name], values[name], f"{where}.{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError("; ".join(errors))
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ParamsError(f"{where} is {value!r}; choose one of {list(typing.get_args(tp))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        (arg, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        _, varg = typing.get_args(tp) or (Any, Any)
        return {k: _coerce(varg, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ParamsError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    return value
