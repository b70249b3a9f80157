"""``roost audit`` and ``roost strip``: what a photo gives away, and a copy that gives nothing.

Heavy imports sit inside the functions (``ml.cli``'s docstring)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml.privacy import KINDS as FAIL_KINDS


def visual(geo, audits: list) -> None:
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


def audit_table(audits: list) -> str:
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


def audit(args: argparse.Namespace) -> int:
    """What each image's metadata (and, with --bundle, its pixels) gives away; exit 0 when
    nothing of the --fail-on kinds is found, 1 when something is, 2 on errors."""
    import json  # lazy (module docstring)

    from PIL import Image

    from ml.privacy.audit import audit_file
    from ml.privacy.files import collect

    fail = set(FAIL_KINDS) if "any" in args.fail_on.split(",") else set(args.fail_on.split(","))
    if fail - set(FAIL_KINDS):
        print(f"roost: error: --fail-on {args.fail_on!r}: use {', '.join(FAIL_KINDS)} or any", file=sys.stderr)
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
        visual(geo, audits)
    print(
        json.dumps([a.to_json() for a in audits], indent=2, ensure_ascii=False)
        if args.format == "json"
        else audit_table(audits)
    )
    if not inputs or any(a.error for a in audits):
        return 2
    return 1 if any(a.kinds() & fail for a in audits) else 0


def strip(args: argparse.Namespace) -> int:
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


def add_parsers(sub) -> None:
    p = sub.add_parser("audit", help="what images' metadata (and, with --bundle, their pixels) give away")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders (recursive)")
    p.add_argument("--bundle", help="a model bundle: also say where the pixels suggest the photo was taken")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--fail-on",
        default="location",
        help="exit 1 when any of these kinds is found: "
        "location, time, identity, device, other (comma-separated) or any (default: location)",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=audit)
    p = sub.add_parser("strip", help="copies of images with no location, time, identity or device metadata (lossless)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders (recursive)")
    p.add_argument("--out", help="write the copies here (a folder's files keep their paths inside it)")
    p.add_argument("--in-place", action="store_true", help="replace the originals (atomically)")
    p.add_argument("--keep", default="icc,orientation", help="what stays: icc, orientation, both (default) or none")
    p.add_argument("--force", action="store_true", help="overwrite copies that exist")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=strip)
