"""Choosing a default on val alone: one param, a few values, several seeds, each a DVC experiment.

``python -m ml.eval.tune geocell_model.epochs 12 20 --seeds 0,1,2`` (``make tune PARAM=... VALUES=...``)
runs ``dvc exp run --temp -S <param>=<value> -S geocell_model.seed=<seed>`` for every value and
seed, then:

1. reads **val only** (``benchmark_report``'s ``val`` set: the split held out beside the test
   split, with the same make-up) from every experiment, and prints per value each seed's
   figure, the mean and the spread (lowest, highest);
2. picks the value with the best mean of ``--metric`` (default GeoGuessr score; ``median_km``:
   the lowest), and **records the pick** in ``data/tuning/<param>.json`` (versioned by git) with the val table and
   the time;
3. only then reads test (the ``holdout`` set) of the same experiments and writes it beside the
   val table in the same file, with the time it was read.

An experiment is reused, not rerun, when it has finished (rerunning picks up where a run
stopped), or any other finished experiment, ran with exactly the params this value and seed need
and the code the stages read now (its DVC lock's hash of every code and reference file
equals the file's): the current value's runs of one round serve the next round's current
value, and ``refine.guess``'s. The record names the experiment each figure comes from. A run
that is still going, failed or was killed is never read (``ml.eval.ablations.experiments``).

``refine.guess`` needs no training per value: the report scores every guess rule on the same
models (``guess_<rule>`` of each set), so its values are read from the seeds' runs of the
current rule. The pick is not applied to params.yaml: that is a commit of its own, which cites
the file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from ml.config import read_params, resolve_section
from ml.eval.ablations import apply_settings, dvc_binary, experiments, profile_overrides
from ml.paths import Paths

SEED = "geocell_model.seed"
GUESS = "refine.guess"
SHOWN = ("geoguessr", "median_km", "country_accuracy", "country_macro_accuracy")
LOWER_IS_BETTER = {"median_km"}


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(text)).strip("-").lower()


def experiment(param: str, value: str, seed: int) -> str:
    return f"tune-{slug(param)}-{slug(value)}-s{seed}"


def current(root: Path, param: str) -> str:
    """The param's value under the active profile (a dotted path into its section)."""
    section, *keys = param.split(".")
    node = resolve_section(read_params(root / "params.yaml"), section, root / "params.yaml")
    for key in keys:
        node = node[key]
    return str(node).lower() if isinstance(node, bool) else str(node)


def settings(root: Path, param: str, value: str, seed: int) -> list[str]:
    """The ``-S`` overrides of one value and seed (the active profile's copy of a key too)."""
    return profile_overrides(read_params(root / "params.yaml"), [f"{param}={value}", f"{SEED}={seed}"])


def wanted_params(root: Path, param: str, value: str, seed: int) -> dict:
    """params.yaml as the experiment of this value and seed runs it (``-S`` parses YAML)."""
    return apply_settings(read_params(root / "params.yaml"), settings(root, param, value, seed))


def same_code(root: Path, deps: dict) -> bool:
    """Every code and reference file the experiment's stages read (its DVC lock's deps, outside
    the pipeline's own outputs under data/) has the hash it had then."""
    files = [p for p in deps if not p.startswith("data/") or p.startswith("data/reference/")]
    for path in files:
        local = root / path
        if local.is_dir():
            continue  # a code folder (model configs): its files are not listed one by one
        if not local.is_file() or hashlib.md5(local.read_bytes()).hexdigest() != deps[path]:
            return False
    return bool(files)


def fits(root: Path, entry: dict, want: dict) -> bool:
    """A finished experiment stands for a value and seed: the same params and the same code."""
    return entry["params"] == want and same_code(root, entry["deps"])


def source(root: Path, found: dict, name: str, param: str, value: str, seed: int) -> str | None:
    """The experiment that stands for ``name``: itself, else a finished twin; either only with
    the params this value and seed need and the code the stages read now."""
    want = wanted_params(root, param, value, seed)
    for other in [name, *sorted(set(found) - {name})]:
        if other in found and fits(root, found[other], want):
            return other
    return None


def run(root: Path, dvc: str, param: str, value: str, seed: int, found: dict) -> None:
    import subprocess

    name = experiment(param, value, seed)
    reused = source(root, found, name, param, value, seed)
    if reused:
        print(f"= {name}: reused{'' if reused == name else f' (the same params and code as {reused})'}", flush=True)
        return
    if name in found:  # finished on other code or params: rerun under its name
        print(f"- {name}: stale (other params or code), rerun", flush=True)
        subprocess.run([dvc, "exp", "remove", name], cwd=root, capture_output=True)
    overrides = settings(root, param, value, seed)
    cmd = [dvc, "exp", "run", "--temp", "-n", name, *(a for s in overrides for a in ("-S", s))]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, check=True)


def figures(found: dict, param: str, values: list[str], seeds: list[int], split: str, runs_of) -> dict:
    """{value: {metric: [per seed]}} of one set (``val`` or ``holdout``)."""
    out = {}
    for value in values:
        out[value] = {m: [] for m in SHOWN}
        for seed in seeds:
            metrics = found[runs_of(value, seed)][split]
            if param == GUESS and metrics.get(f"guess_{value}"):  # another rule, on the same models
                metrics = metrics[f"guess_{value}"]
            for m in SHOWN:
                out[value][m].append(float(metrics.get(m, float("nan"))))
    return out


def summary(table: dict) -> dict:
    return {
        v: {m: {"seeds": xs, "mean": float(np.mean(xs)), "low": min(xs), "high": max(xs)} for m, xs in ms.items()}
        for v, ms in table.items()
    }


def pick(val: dict, metric: str) -> str:
    sign = -1 if metric in LOWER_IS_BETTER else 1
    return max(val, key=lambda v: sign * val[v][metric]["mean"])


def show(title: str, table: dict, chosen: str | None = None) -> str:
    lines = [title, "| value | " + " | ".join(f"{m} (mean; seeds; low-high)" for m in SHOWN) + " |"]
    lines.append("|---" * (len(SHOWN) + 1) + "|")
    for value, ms in table.items():
        cells = [
            f"{s['mean']:.1f}; {' / '.join(f'{x:.1f}' for x in s['seeds'])}; {s['low']:.1f}-{s['high']:.1f}"
            for s in (ms[m] for m in SHOWN)
        ]
        lines.append(f"| {value}{' (picked)' if value == chosen else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="choose a param's value on val over seeds; test read after the pick")
    parser.add_argument("param", help="a dotted params key, e.g. geocell_model.epochs")
    parser.add_argument("values", nargs="+")
    parser.add_argument("--seeds", default="0,1,2", help="geocell_model.seed values (default 0,1,2)")
    parser.add_argument("--metric", default="geoguessr", choices=SHOWN, help="what the pick maximises (median_km: min)")
    parser.add_argument("--collect-only", action="store_true", help="read existing experiments, run none")
    args = parser.parse_args(argv)
    root, dvc = Path.cwd(), dvc_binary(Path.cwd())
    seeds = [int(s) for s in args.seeds.split(",")]
    values = [str(v) for v in args.values]
    now = current(root, args.param)
    if args.param == GUESS:  # every rule is scored on the runs of the current one
        wanted = [(now, s) for s in seeds]
    else:
        wanted = [(v, s) for v in values for s in seeds]
    if not args.collect_only:
        found = experiments(root, dvc)
        for value, seed in wanted:
            run(root, dvc, args.param, value, seed, found)
    found = experiments(root, dvc)
    sources = {(v, s): source(root, found, experiment(args.param, v, s), args.param, v, s) for v, s in wanted}
    missing = sorted(experiment(args.param, v, s) for (v, s), src in sources.items() if src is None)
    if missing:
        print(f"roost tune: no results for {missing}; run without --collect-only", file=sys.stderr)
        return 1
    runs_of = lambda value, seed: sources[(now if args.param == GUESS else value, seed)]  # noqa: E731
    found = {name: e["metrics"] for name, e in found.items()}
    out = Paths(root).tuning / f"{slug(args.param)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    val = summary(figures(found, args.param, values, seeds, "val", runs_of))
    chosen = pick(val, args.metric)
    record = {"param": args.param, "values": values, "seeds": seeds, "metric": args.metric, "current": now}
    record["runs"] = {v: [runs_of(v, s) for s in seeds] for v in values}  # the experiment behind each figure
    record |= {"val": val, "pick": chosen, "picked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out.write_text(json.dumps(record, indent=2))  # the pick is recorded before test is read
    print(show(f"val ({args.param}; pick by mean {args.metric}: {chosen}; recorded in {out})", val, chosen))
    test = summary(figures(found, args.param, values, seeds, "holdout", runs_of))
    record |= {"test": test, "test_read_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out.write_text(json.dumps(record, indent=2))
    print("\n" + show("test (holdout), read after the pick", test, chosen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
