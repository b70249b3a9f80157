"""The ``roost`` command.

Each command imports what it needs inside its function (marked ``# lazy``): ``roost params``
should not wait seconds for torch, transformers and geopandas to load."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ml import __version__
from ml.config import ParamsError, active_profile, read_params, resolve_section
from ml.settings import GUESSES


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
        print(f"roost: error: {e}", file=sys.stderr)
        return 2
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
        print(f"roost: error: {e}", file=sys.stderr)
        return 2
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


FAIL_KINDS = ("location", "time", "identity", "other")


def _visual(geo, audits: list) -> None:
    """What the bundle's model infers from each readable image's pixels, into ``audit.visual``."""
    from ml.predict import Item  # lazy (module docstring)

    readable = [a for a in audits if not a.error]
    results = geo.predict_items([Item(a.input, [Path(a.input)]) for a in readable])
    warning = None
    if geo.image_domain != "photos":
        warning = (
            f"this model was trained on {geo.image_domain}, not on photos: its guess for a photo carries no meaning"
        )
    for a, r in zip(readable, results):
        if "error" in r:
            a.visual = {"error": r["error"]}
            continue
        keys = ("lat", "lon", "country", "country_name", "admin1", "town", "radius_km")
        cells = [{k: c[k] for k in ("cell_id", "probability", "lat", "lon")} for c in r["top_cells"]]
        a.visual = {k: r[k] for k in keys} | {"top_cells": cells, "image_domain": geo.image_domain, "warning": warning}


def _audit_table(audits: list) -> str:
    lines = []
    for a in audits:
        lines.append(f"{a.input}" + (f"  ({a.format})" if a.format else ""))
        if a.error:
            lines.append(f"  error: {a.error}")
        for f in a.findings:
            lines.append(f"  {f['kind']:9} {f['field']:32} {f['value']}")
        if not a.error and not a.findings:
            lines.append("  no metadata findings")
        v = a.visual
        if v and "error" not in v:
            lines.append(
                f"  {'visual':9} guess {v['lat']:.4f}, {v['lon']:.4f} ({v['country'] or '-'}, "
                f"{v['admin1'] or '-'}), half the probability within {v['radius_km']:.0f} km"
            )
            if v["warning"]:
                lines.append(f"  {'':9} warning: {v['warning']}")
    return "\n".join(lines)


def _audit(args: argparse.Namespace) -> int:
    """What each image's metadata (and, with --bundle, its pixels) gives away; exit 0 when
    nothing of the --fail-on kinds is found, 1 when something is, 2 on errors."""
    import json  # lazy (module docstring)

    from PIL import Image

    from ml.privacy.audit import audit_file
    from ml.privacy.files import collect

    fail = set(FAIL_KINDS) if "any" in args.fail_on.split(",") else set(args.fail_on.split(","))
    if fail - set(FAIL_KINDS):
        print(f"roost: error: --fail-on {args.fail_on!r}: use location, time, identity, other or any", file=sys.stderr)
        return 2
    geo = None
    if args.bundle:
        from ml.bundle import BundleError
        from ml.predict import Geolocator

        try:
            geo = Geolocator(args.bundle, device=args.device)
        except BundleError as e:
            print(f"roost: error: {e}", file=sys.stderr)
            return 2
    max_pixels = geo.max_pixels if geo else Image.MAX_IMAGE_PIXELS  # Pillow's decompression-bomb limit
    inputs, _ = collect(args.paths)
    audits = [audit_file(i.path, max_pixels) for i in inputs]
    if geo:
        _visual(geo, audits)
    print(
        json.dumps([a.to_json() for a in audits], indent=2, ensure_ascii=False)
        if args.format == "json"
        else _audit_table(audits)
    )
    if not inputs or any(a.error for a in audits):
        return 2
    return 1 if any(a.kinds() & fail for a in audits) else 0


def _strip(args: argparse.Namespace) -> int:
    """Copies without location, time or identity metadata; exit 0 when every file was
    stripped, 2 when any could not be."""
    import json  # lazy (module docstring)

    from PIL import Image
    from tqdm import tqdm

    from ml.privacy.files import collect
    from ml.privacy.strip import KEEP, strip_file

    keep = {k.strip() for k in args.keep.split(",") if k.strip() and k.strip() != "none"}
    if keep - set(KEEP):
        print(f"roost: error: --keep {args.keep!r}: use icc, orientation, both or none", file=sys.stderr)
        return 2
    if bool(args.out) == bool(args.in_place):
        print("roost: error: give --out DIR or --in-place (which overwrites the originals)", file=sys.stderr)
        return 2
    inputs, _ = collect(args.paths)
    show = len(inputs) > 1 and sys.stderr.isatty()
    records = []
    for i in tqdm(inputs, desc="strip", disable=not show, unit="file"):
        dest = i.path if args.in_place else Path(args.out) / i.relative
        records.append(strip_file(i.path, dest, keep, Image.MAX_IMAGE_PIXELS, force=args.force))
    if args.format == "json":
        print(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        for r in records:
            if "error" in r:
                print(f"{r['input']}: error: {r['error']}")
            else:
                removed = ", ".join(r["removed"]) or "nothing to remove"
                print(f"{r['input']} -> {r['output']}: {removed} ({r['bytes_before']:,} -> {r['bytes_after']:,} bytes)")
    return 2 if not inputs or any("error" in r for r in records) else 0


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
        print(f"roost: error: {e}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"roost: warning: listening on {args.host}: anyone who can reach this machine can use the page",
            file=sys.stderr,
        )
    print(f"roost serve: http://{args.host}:{args.port}/ (bundle {args.bundle}; Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(build_app(geo, cfg), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


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
    p.add_argument("--bundle", default="data/model_bundle/bundle", help="a model_bundle folder")
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
    p.add_argument("--bundle", default="data/model_bundle/bundle")
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
    p = sub.add_parser("audit", help="what images' metadata (and, with --bundle, their pixels) give away")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders (recursive)")
    p.add_argument("--bundle", help="a model bundle: also say where the pixels suggest the photo was taken")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--fail-on",
        default="location",
        help="exit 1 when any of these kinds is found: "
        "location, time, identity, other (comma-separated) or any (default: location)",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_audit)
    p = sub.add_parser("strip", help="copies of images with no location, time or identity metadata (lossless)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders (recursive)")
    p.add_argument("--out", help="write the copies here (a folder's files keep their paths inside it)")
    p.add_argument("--in-place", action="store_true", help="replace the originals (atomically)")
    p.add_argument("--keep", default="icc,orientation", help="what stays: icc, orientation, both (default) or none")
    p.add_argument("--force", action="store_true", help="overwrite copies that exist")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=_strip)
    p = sub.add_parser("serve", help="a local web page and API: geolocate and check photos")
    p.add_argument("--bundle", default="data/model_bundle/bundle")
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


if __name__ == "__main__":
    sys.exit(main())
