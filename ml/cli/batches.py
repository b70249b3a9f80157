"""``roost batches``: the batches of new data in the landing folder (``ml.landing``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml.paths import Paths


def batches(args: argparse.Namespace) -> int:
    """List, add or remove landed batches (``ml.landing``); list shows the last run's counts."""
    from ml.config import load_config  # lazy (module docstring)
    from ml.landing import AutomationConfig, LandingError, add_batch, landed_batches, remove_batch

    if args.action != "list" and not args.target:
        print(
            f"roost: error: batches {args.action} needs a {'PATH' if args.action == 'add' else 'NAME'}", file=sys.stderr
        )
        return 2
    paths = Paths(Path(args.params).resolve().parent)
    cfg = load_config(AutomationConfig, args.params)
    folder = paths.resolve(cfg.landing)
    try:
        if args.action == "add":
            target = add_batch(folder, Path(args.target), args.name or "")
            print(f"added batch {target.name} ({target}); the next run of the chain reads it")
        elif args.action == "remove":
            target = remove_batch(folder, paths.resolve(cfg.removed), args.target)
            print(f"removed batch {args.target}: moved to {target}; the next run of the chain leaves it out")
        else:
            print(_batch_table(landed_batches(folder), _last_counts(paths)))
    except LandingError as e:
        print(f"roost: error: {e}", file=sys.stderr)
        return 2
    return 0


def _last_counts(paths: Paths) -> dict[str, dict]:
    """The last raw_locations run's counts per batch (empty before the first run)."""
    db = paths.asset_db("raw_locations")
    if not db.exists():
        return {}
    from ml.store import list_tables, read_table  # lazy (module docstring)

    if "batches" not in list_tables(db):  # a raw_locations from before batches
        return {}
    return {r["batch"]: r for r in read_table(db, "batches").to_dict(orient="records")}


def _batch_table(batches, counts: dict[str, dict]) -> str:
    lines = [f"{'batch':40} {'source':12} {'locations':>9} {'rejected':>8} {'duplicates':>10}  last run"]
    names = ["base"] + [b.name for b in batches]
    sources = {"base": counts.get("base", {}).get("source", "params")} | {b.name: b.source for b in batches}
    for name in names:
        c = counts.get(name)
        figures = (
            f"{c['locations']:9,} {c['rejected']:8,} {c['duplicates']:10,}" if c else f"{'-':>9} {'-':>8} {'-':>10}"
        )
        lines.append(f"{name[:40]:40} {sources[name]:12} {figures}  {'yes' if c else 'not yet run'}")
    gone = sorted(set(counts) - set(names))
    if gone:
        lines.append(f"(in the last run, since removed: {', '.join(gone)})")
    return "\n".join(lines)


def add_parser(sub) -> None:
    p = sub.add_parser("batches", help="the batches of new data in the landing folder: list, add or remove")
    p.add_argument("action", choices=["list", "add", "remove"], nargs="?", default="list")
    p.add_argument("target", nargs="?", metavar="PATH|NAME", help="add: a manifest or photo folder; remove: a batch")
    p.add_argument("--name", help="add: the batch's name after its time stamp (default: the file or folder name)")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=batches)
