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


def _render(args: argparse.Namespace) -> int:
    """Render the terrain views of places, one row per place, into a PNG."""
    from pathlib import Path

    from ml.config import load_config
    from ml.data.images import contact_sheet
    from ml.data.terrain import TerrainRenderer, view_seed
    from ml.data.views import ImagesConfig
    from ml.geo.reference import ReferenceData

    cfg = load_config(ImagesConfig, args.params)
    root = Path(args.params).resolve().parent
    renderer = TerrainRenderer(ReferenceData(root / "data" / "reference"), cfg.terrain, cfg.image_size)
    views = []
    for place in args.places:
        lat, lon = (float(x) for x in place.split(","))
        headings = [v * 360.0 / cfg.views for v in range(cfg.views)]
        seeds = [view_seed(cfg.seed, place, v) for v in range(cfg.views)]
        images, _ = renderer.render([lat] * cfg.views, [lon] * cfg.views, headings, seeds)
        views.extend(images)
    Path(args.out).write_bytes(contact_sheet(views, columns=cfg.views, scale=args.scale))
    print(f"wrote {args.out}: {len(args.places)} place(s) x {cfg.views} views")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roost", description="Roost: image geolocation, PIGEON-style.")
    parser.add_argument("--version", action="version", version=f"roost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("params", help="show params.yaml resolved for the active profile")
    p.add_argument("section", nargs="?", help="one section (default: all)")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_params)
    p = sub.add_parser("render", help="render the terrain views of places (LAT,LON ...) into a PNG")
    p.add_argument("places", nargs="+", metavar="LAT,LON")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_render)
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
