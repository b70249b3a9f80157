"""The ``roost`` command."""

from __future__ import annotations

import argparse
import sys

import yaml

from ml import __version__
from ml.config import ParamsError, active_profile, read_params, resolve_section


def _params(args: argparse.Namespace) -> int:
    params = read_params(args.params)
    profile = active_profile(params, args.params)
    sections = [args.section] if args.section else [k for k in params if k != "profile"]
    resolved = {s: resolve_section(params, s, args.params) for s in sections}
    print(f"# profile: {profile}")
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roost", description="Roost: image geolocation, PIGEON-style.")
    parser.add_argument("--version", action="version", version=f"roost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("params", help="show params.yaml resolved for the active profile")
    p.add_argument("section", nargs="?", help="one section (default: all)")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_params)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParamsError, FileNotFoundError) as e:
        print(f"roost: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
