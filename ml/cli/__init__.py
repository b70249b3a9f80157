"""The ``roost`` command: the parser, and the commands that geolocate (predict, evaluate, serve,
render); ``ml.cli.privacy`` holds audit and strip, ``ml.cli.batches`` the landing folder's batches.

Each command imports what it needs inside its function (marked ``# lazy``): ``roost params``
should not wait seconds for torch, transformers and geopandas to load."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ml import __version__
from ml.cli import batches, privacy
from ml.config import ParamsError, active_profile, read_params, resolve_section
from ml.paths import Paths
from ml.settings import GUESSES

# the promoted bundle (the champion asset): what predict, evaluate and serve use by default
CHAMPION = str(Paths(Path(".")).champion)


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
    from pathlib import Path  # lazy (module docstring)

    from ml.config import load_config
    from ml.data.images import contact_sheet
    from ml.data.terrain import TerrainRenderer, view_seed
    from ml.geo.reference import ReferenceData
    from ml.paths import Paths
    from ml.settings import ImagesConfig

    cfg = load_config(ImagesConfig, args.params)
    reference = Paths(Path(args.params).resolve().parent).reference
    renderer = TerrainRenderer(ReferenceData(reference), cfg.terrain, cfg.image_size)
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


def _predict(args: argparse.Namespace) -> int:
    """Geolocate images with a bundle; exit 1 when any input failed, 2 when nothing could run."""
    import json  # lazy (module docstring)
    from pathlib import Path

    from ml.bundle import BundleError
    from ml.data.images import load_image
    from ml.models.backbone import preprocess
    from ml.predict import Geolocator, collect_items, explain, explain_png, map_png, to_geojson, to_rows

    try:
        geo = Geolocator(args.bundle, device=args.device, threads=args.threads)
    except BundleError as e:
        return _bundle_error(e, args.bundle)
    if args.guess:
        geo.refine = geo.refine_as(args.guess)
    if geo.image_domain != "photos":
        print(
            f"roost: warning: this model was trained on {geo.image_domain}, not on photos; "
            "its guesses for other images carry no meaning",
            file=sys.stderr,
        )
    try:
        items = collect_items(args.paths, args.group_views)
    except ValueError as e:
        print(f"roost: error: {e}", file=sys.stderr)
        return 2
    results = geo.predict_items(items, batch_size=args.batch_size, progress=len(items) > 20 and sys.stderr.isatty())
    if args.format == "json":
        text = json.dumps(results, indent=2, ensure_ascii=False)
    elif args.format == "geojson":
        text = json.dumps(to_geojson(results), indent=2, ensure_ascii=False)
    elif args.format == "csv":
        text = to_rows(results).to_csv(index=False)
    else:
        text = _table(results)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    if args.map:
        Path(args.map).write_bytes(map_png(results, geo.bundle.countries()))
    if args.explain:
        first = next((it for it, r in zip(items, results) if "error" not in r), None)
        if first is not None:
            image = load_image(first.paths[0], geo.max_pixels)
            heat = explain(geo.model, geo.spec, image)
            shown = preprocess([image], geo.spec)[0].permute(1, 2, 0).numpy() * geo.spec.image_std + geo.spec.image_mean
            Path(args.explain).write_bytes(explain_png((shown.clip(0, 1) * 255).astype("uint8"), heat, first.name))
    return 1 if any("error" in r for r in results) else 0


def _evaluate(args: argparse.Namespace) -> int:
    """PIGEON's metrics for a bundle on a manifest of located images, outside the pipeline: the
    benchmark_report stage's functions, its settings from the bundle (or ``--params``) with the
    flags over them."""
    from dataclasses import replace  # lazy (module docstring)
    from pathlib import Path

    import pandas as pd

    from ml.bundle import BundleError
    from ml.config import load_config
    from ml.eval.evaluate import SwappedColumnsError, evaluate_manifest
    from ml.eval.report import markdown_table, metric_table
    from ml.predict import Geolocator
    from ml.settings import ReportConfig
    from ml.stages.benchmark_report import write_reports, zero_shot_models

    try:
        geo = Geolocator(args.bundle, device=args.device)
    except BundleError as e:
        return _bundle_error(e, args.bundle)
    cfg = load_config(ReportConfig, args.params or geo.bundle.params)
    flags = {"bootstrap": args.bootstrap, "batch_size": args.batch_size, "zero_shot_top_countries": args.top_countries}
    flags = {k: v for k, v in flags.items() if v is not None}
    cfg = replace(cfg, sets=[], max_locations=0, zero_shot=args.zero_shot, **flags)
    sites = geo.bundle.sites()  # the training locations: the baselines' and the zero-shot regions'
    named = pd.concat([sites, geo.name_places(sites["lat"].to_numpy(), sites["lon"].to_numpy())], axis=1)
    zero_shots = zero_shot_models(
        cfg.zero_shot, named, geo.bundle.model, Path, cfg.zero_shot_top_countries, args.device
    )
    name = args.name or Path(args.manifest).stem
    try:
        manifest, lookup = Path(args.manifest), geo.cell_lookup()
        result = evaluate_manifest(geo, name, manifest, args.swap_lat_lon, sites, lookup, cfg, zero_shots)
    except (SwappedColumnsError, ValueError) as e:
        print(f"roost: error: {e}", file=sys.stderr)
        return 2
    files = write_reports([result], Path(args.out), geo, reports="")
    print(markdown_table(metric_table(result)))
    print(f"\nreport: {files[name]} ({result.failed} images could not be read)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """The local web page and API over one bundle (``ml.serve.app``), loaded once."""
    import uvicorn  # lazy (module docstring)

    from ml.bundle import BundleError
    from ml.config import load_config
    from ml.predict import Geolocator
    from ml.serve.app import build_app
    from ml.settings import ServeConfig

    cfg = load_config(ServeConfig, args.params)
    try:
        geo = Geolocator(args.bundle, device=args.device, threads=args.threads)
    except BundleError as e:
        return _bundle_error(e, args.bundle)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"roost: warning: listening on {args.host}: anyone who can reach this machine can use the page",
            file=sys.stderr,
        )
    print(f"roost serve: http://{args.host}:{args.port}/ (bundle {args.bundle}; Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(build_app(geo, cfg), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _bundle_error(error: Exception, bundle: str) -> int:
    print(f"roost: error: {error}", file=sys.stderr)
    if bundle == CHAMPION and not Path(bundle).exists():
        print(
            "roost: no champion bundle yet: `make run` promotes the first one (the champion asset); "
            "or name one with --bundle, e.g. --bundle data/model_bundle/bundle",
            file=sys.stderr,
        )
    return 2


def _table(results: list[dict]) -> str:
    lines = [f"{'input':40} {'lat':>9} {'lon':>10} {'country':8} {'admin1':24} {'radius_km':>9}"]
    for r in results:
        name = r["input"][-40:]
        if "error" in r:
            lines.append(f"{name:40} error: {r['error']}")
        else:
            lines.append(
                f"{name:40} {r['lat']:9.4f} {r['lon']:10.4f} {str(r['country'] or '-'):8} "
                f"{str(r['admin1'] or '-')[:24]:24} {r['radius_km']:9.1f}"
            )
    return "\n".join(lines)


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
    p = sub.add_parser("predict", help="geolocate images with a model bundle")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, or manifests (.csv/.parquet)")
    p.add_argument("--bundle", default=CHAMPION, help="a model bundle folder (default: the champion)")
    p.add_argument("--format", choices=["table", "json", "csv", "geojson"], default="table")
    p.add_argument("--group-views", action="store_true", help="average the views of one folder / manifest id")
    p.add_argument("--guess", choices=GUESSES, help="the cell a guess starts from (default: the bundle's refine.guess)")
    p.add_argument("--map", metavar="PNG", help="write the guesses and top cells on a world map")
    p.add_argument("--explain", metavar="PNG", help="write the attention rollout of the first image")
    p.add_argument("--output", metavar="FILE", help="write the results here instead of standard output")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=_predict)
    p = sub.add_parser("evaluate", help="PIGEON's metrics for a bundle on a manifest of located images")
    p.add_argument("manifest", help="CSV/Parquet with lat, lon and image_path (the raw_locations format)")
    p.add_argument("--bundle", default=CHAMPION, help="a model bundle folder (default: the champion)")
    p.add_argument("--name", help="the set's name in the report (default: the manifest's file name)")
    p.add_argument("--out", default="evaluation", help="folder for the report")
    p.add_argument("--swap-lat-lon", action="store_true", help="the manifest's lat and lon headers are swapped")
    p.add_argument("--params", help="params.yaml for the benchmark_report settings (default: the bundle's)")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples (default: the params')")
    p.add_argument("--batch-size", type=int, help="images per batch (default: the params')")
    p.add_argument(
        "--zero-shot",
        action="append",
        default=[],
        metavar="CLIP",
        help="also score this CLIP model by zero-shot prompts (a local folder or a hub id; repeatable)",
    )
    p.add_argument("--top-countries", type=int, help="zero-shot: regions within this many countries (default: params')")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_evaluate)
    privacy.add_parsers(sub)
    batches.add_parser(sub)
    p = sub.add_parser("serve", help="a local web page and API: geolocate and check photos")
    p.add_argument("--bundle", default=CHAMPION, help="a model bundle folder (default: the champion)")
    p.add_argument("--host", default="127.0.0.1", help="default: this machine only")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--params", default="params.yaml", help="params.yaml holding the serve section (upload limits)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParamsError, FileNotFoundError) as e:
        print(f"roost: error: {e}", file=sys.stderr)
        return 2
