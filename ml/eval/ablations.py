"""PIGEON's ablations through the pipeline itself: DVC experiments with ``-S`` param overrides.

``make ablations`` (``python -m ml.eval.ablations``) runs ``dvc exp run --temp -S ...`` once per
variant, from the committed pipeline state; DVC reruns exactly the stages each override
touches (and reuses the cached outputs of the rest). No special code path: every variant is a
params override. Then it reads every experiment's ``benchmark_report`` metrics (values and
bootstrap intervals) with ``dvc exp show --json`` and writes the ablation table, each variant
beside the full model with its difference, to ``data/ablations/`` (``ablations.md``,
``ablations.html``, ``ablations.json``); the benchmark report includes the table when present.

The full model is the workspace's own ``data/benchmark_report/metrics.json`` (run ``make run``
first so that it is up to date with the committed params).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ml.config import active_profile, read_params
from ml.eval.report import METRICS_FILE, ORDER, markdown_html
from ml.paths import Paths

VARIANTS: dict[str, tuple[str, list[str]]] = {
    "one_hot_labels": ("one-hot labels instead of haversine smoothing", ["geocell_model.labels=one_hot"]),
    "naive_geocells": ("naive geocells (equal-count boxes) instead of semantic", ["geocells.builder=naive"]),
    "no_refinement": ("no prototype refinement", ["refine.enabled=false"]),
    "one_view": ("1 view instead of all (training and evaluation)", ["geocell_model.views=1"]),
    "no_contrastive": ("no contrastive pretraining (base CLIP into geocell_model)", ["streetclip.epochs=0"]),
    "no_multitask": (
        "no multi-task heads",
        [f"geocell_model.aux.{h}=0" for h in ("koppen", "landcover", "elevation", "population", "month")],
    ),
}
METRICS = ORDER[:-1]  # the report's metrics but top-5
REPORT = "benchmark_report"  # the stage whose metrics the variants compare


def report_metrics(paths: Paths, relative: bool = False) -> Path | str:
    """The report's DVC metrics file (``relative``: as ``dvc exp show`` names it)."""
    path = paths.asset_dir(REPORT) / METRICS_FILE
    return str(path.relative_to(paths.root)) if relative else path


def dvc_binary(root: Path) -> str:
    return os.environ.get("ROOST_DVC") or str(root / ".venv-dvc" / "bin" / "dvc")


def profile_overrides(params: dict, settings: list[str]) -> list[str]:
    """``settings`` (``section.key=value``) plus, for every key the active profile overrides
    in that section, the same setting under ``section.profiles.<profile>``: the profile's value
    is merged over the base, so setting the base alone would change nothing (the default's
    ``streetclip.epochs`` once made ``no_contrastive`` the full model under another name)."""
    profile = active_profile(params)
    out = []
    for setting in settings:
        out.append(setting)
        path, _, _ = setting.partition("=")
        section, *keys = path.split(".")
        node = ((params.get(section) or {}).get("profiles") or {}).get(profile) or {}
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            out.append(f"{section}.profiles.{profile}.{setting.partition('.')[2]}")
    return out


def apply_settings(params: dict, settings: list[str]) -> dict:
    """What ``dvc exp run -S`` does to params.yaml (values parsed as YAML scalars), on a copy."""
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


def run_variant(root: Path, name: str, dvc: str) -> None:
    settings = profile_overrides(read_params(root / "params.yaml"), VARIANTS[name][1])
    overrides = [a for s in settings for a in ("-S", s)]
    exp = f"ablation-{name.replace('_', '-')}"
    # a previous run's experiment of the same name would clash (--force would rerun every stage)
    subprocess.run([dvc, "exp", "remove", exp], cwd=root, capture_output=True)
    cmd = [dvc, "exp", "run", "--temp", "-n", exp, *overrides]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, check=True)


def experiments(root: Path, dvc: str) -> dict[str, dict]:
    """{experiment name: {"metrics": the benchmark_report metrics, "params": its params.yaml,
    "deps": {path: hash}}} of every **finished** experiment in ``dvc exp show``. A run still
    going, queued, failed or killed (its executor's entry outlives it) shows the workspace's own
    metrics under the experiment's name, so it is left out: reading it once passed the
    workspace's old model off as a new experiment."""
    shown = subprocess.run(
        [dvc, "exp", "show", "--all-commits", "--json"], cwd=root, check=True, capture_output=True, text=True
    )
    return finished(json.loads(shown.stdout), report_metrics(Paths(root), relative=True))


def finished(shown, metrics_file: str) -> dict[str, dict]:
    out = {}

    def visit(node, state=None):
        if isinstance(node, dict):
            if "executor" in node:  # an experiment: {executor, name, revs: [...]}
                state = (node.get("executor") or {}).get("state")
            name, data = node.get("name"), node.get("data") or {}
            metrics = (data.get("metrics") or {}).get(metrics_file, {}).get("data")
            if name and metrics and state in (None, "success") and not node.get("error"):
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                deps = {k: (v or {}).get("hash") for k, v in (data.get("deps") or {}).items()}
                out.setdefault(name, {"metrics": metrics, "params": params, "deps": deps})
            for key, value in node.items():
                if key != "data":
                    visit(value, state)
        elif isinstance(node, list):
            for v in node:
                visit(v, state)

    visit(shown)
    return out


def experiment_metrics(root: Path, dvc: str) -> dict[str, dict]:
    """{experiment name: the benchmark_report metrics it produced} of every finished experiment."""
    return {name: e["metrics"] for name, e in experiments(root, dvc).items()}


def _cell(metrics: dict, key: str) -> tuple[float, float, float]:
    value = metrics.get(key, float("nan"))
    interval = (metrics.get("intervals") or {}).get(key, {})
    low, high = interval.get("low", float("nan")), interval.get("high", float("nan"))
    return value, low, high


def ablation_table(full: dict, variants: dict[str, dict]) -> list[dict]:
    """Rows: (set, metric) x (full model, each variant with its difference to the full model)."""
    rows = []
    for set_name in full:
        for key in METRICS:
            if key not in full[set_name]:
                continue
            v, lo, hi = _cell(full[set_name], key)
            row = {"set": set_name, "metric": key, "full model": f"{v:.2f} ({lo:.2f}-{hi:.2f})"}
            for name, metrics in variants.items():
                if set_name not in metrics or key not in metrics[set_name]:
                    row[name] = ""
                    continue
                w, wlo, whi = _cell(metrics[set_name], key)
                row[name] = f"{w:.2f} ({wlo:.2f}-{whi:.2f}) {w - v:+.2f}"
            rows.append(row)
    return rows


def markdown(rows: list[dict], variants: list[str]) -> str:
    if not rows:
        return "No ablation results.\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    legend = "\n".join(f"- `{n}`: {VARIANTS[n][0]} ({', '.join(VARIANTS[n][1])})" for n in variants if n in VARIANTS)
    return (
        "# Ablations\n\nEach cell: value (bootstrap 95% interval) and the difference to the full model. "
        "Each variant is a DVC experiment of the same pipeline with params overrides:\n\n"
        f"{legend}\n\n" + "\n".join(lines) + "\n"
    )


def write(root: Path, full: dict, found: dict[str, dict], variants: list[str]) -> Path:
    rows = ablation_table(full, {n: found[n] for n in variants if n in found})
    out = Paths(root).ablations
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(rows, variants)
    (out / "ablations.md").write_text(md)
    (out / "ablations.html").write_text(markdown_html(md, "Roost ablations"))
    (out / "ablations.json").write_text(json.dumps({"full": full, "variants": found}, indent=2))
    return out / "ablations.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PIGEON's ablations as DVC experiments")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated; known: {', '.join(VARIANTS)}")
    parser.add_argument("--collect-only", action="store_true", help="only rebuild the table from existing experiments")
    args = parser.parse_args(argv)
    root = Path.cwd()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"roost ablations: unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    dvc = dvc_binary(root)
    full_file = report_metrics(Paths(root))
    if not full_file.exists():
        print(f"roost ablations: {full_file} missing: run `make run` first (the full model)", file=sys.stderr)
        return 2
    if not args.collect_only:
        for name in names:
            run_variant(root, name, dvc)
    found = {
        k.removeprefix("ablation-").replace("-", "_"): v
        for k, v in experiment_metrics(root, dvc).items()
        if k.startswith("ablation-")
    }
    missing = [n for n in names if n not in found]
    path = write(root, json.loads(full_file.read_text()), found, names)
    print(path.read_text())
    if missing:
        print(f"roost ablations: no results for {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
