"""champion: the promotion gate between a freshly built bundle (the challenger, model_bundle)
and the bundle users get (``data/champion/bundle``: ``roost predict`` and ``roost serve`` use
it when given no ``--bundle``).

The challenger's figures are the report's (``benchmark_report``'s holdout: the test split of the
enriched locations it was trained beside). The current champion is re-scored on the same
locations by the report's own function (``ml.eval.evaluate.evaluate_holdout``, with the
challenger's ``benchmark_report`` settings), so both models are measured alike. The challenger
is promoted unless it is worse on GeoGuessr score, median error or country accuracy by more
than ``promotion.tolerance`` half-widths of the champion's 95% bootstrap interval; ``force``
promotes it anyway. The first bundle is promoted without a champion. Every verdict, with both
sets of figures, is appended to ``verdicts.jsonl`` (the stage's out is persistent: DVC keeps the
champion across reruns).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ml.bundle import BundleError, bundle_id, read_manifest, verify_bundle
from ml.config import load_config
from ml.eval.evaluate import evaluate_holdout
from ml.eval.report import METRICS_FILE
from ml.paths import Paths
from ml.predict import Geolocator
from ml.settings import EnrichConfig, PromotionConfig, ReportConfig
from ml.stages.location_images import open_store, read_images, read_located

STAGE = "champion"
log = logging.getLogger(__name__)
# metric -> +1 where higher is better, -1 where lower is
GATED = {"geoguessr": 1, "median_km": -1, "country_accuracy": 1}


@dataclass
class Verdict:
    promoted: bool
    reason: str
    challenger: dict  # metric -> {value, low, high} on the challenger's holdout
    champion: dict  # the same for the champion before this verdict (empty: there was none)
    tolerance: dict = field(default_factory=dict)  # metric -> the allowed shortfall
    worse: list = field(default_factory=list)  # the metrics the challenger fell short on
    forced: bool = False
    n: int = 0  # holdout locations both were scored on
    challenger_id: str = ""
    champion_id: str = ""  # the champion's bundle id before this verdict
    at: str = ""


def reported(paths: Paths) -> tuple[dict, int]:
    """The challenger's gated metrics on the holdout, as ``benchmark_report`` wrote them."""
    path = paths.asset_dir("benchmark_report") / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: materialize benchmark_report (the challenger's report) first")
    holdout = json.loads(path.read_text())["holdout"]
    return {k: {"value": holdout[k], **holdout["intervals"][k]} for k in GATED}, int(holdout["n"])


def score(bundle: Path, paths: Paths, cfg: ReportConfig, block_km: float) -> tuple[dict, int]:
    """``bundle``'s gated metrics on the current holdout, as the report computes them."""
    geo = Geolocator(bundle)
    locations = read_located(paths)
    train = locations[locations["split"] == "train"]
    with open_store(paths) as store:
        result = evaluate_holdout(
            geo, locations, read_images(paths), store, train, geo.cell_lookup(), cfg, {}, block_km
        )
    return {k: {m: float(v) for m, v in result.metrics[k].items()} for k in GATED}, len(result.frame)


def judge(challenger: dict, champion: dict, tolerance: float, force: bool) -> tuple[bool, list, dict]:
    """(promote?, the metrics it is worse on, the allowed shortfall per metric)."""
    allowed, worse = {}, []
    for k, sign in GATED.items():
        allowed[k] = tolerance * (champion[k]["high"] - champion[k]["low"]) / 2
        if sign * (challenger[k]["value"] - champion[k]["value"]) < -allowed[k]:
            worse.append(k)
    return force or not worse, worse, allowed


def run_champion(paths: Paths, cfg: PromotionConfig) -> Verdict:
    verify_bundle(paths.bundle)
    report = load_config(ReportConfig, paths.bundle / "params.yaml")
    block_km = load_config(EnrichConfig, paths.bundle / "params.yaml").split.block_km
    challenger, n = reported(paths)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    unreadable = ""
    if (paths.champion / "manifest.json").exists():
        try:
            verify_bundle(paths.champion)
        except BundleError as e:  # e.g. a schema this Roost no longer reads: it cannot be compared
            unreadable = str(e)
    if not (paths.champion / "manifest.json").exists() or unreadable:
        why = f"the champion cannot be read ({unreadable})" if unreadable else "first bundle: no champion yet"
        verdict = Verdict(True, f"promoted: {why}", challenger, {}, n=n, at=at)
    else:
        champion, scored = score(paths.champion, paths, report, block_km)
        if scored != n:
            raise ValueError(
                f"the champion was scored on {scored} holdout locations, the report on {n}: rerun benchmark_report"
            )
        promoted, worse, allowed = judge(challenger, champion, cfg.tolerance, cfg.force)
        if worse and cfg.force:
            reason = f"forced (promotion.force): promoted although worse on {', '.join(worse)}"
        elif worse:
            reason = f"refused: worse than the champion on {', '.join(worse)} beyond the tolerance"
        else:
            reason = "promoted: not worse than the champion on any gated metric beyond the tolerance"
        verdict = Verdict(promoted, reason, challenger, champion, allowed, worse, cfg.force and bool(worse), n)
        verdict.champion_id, verdict.at = bundle_id(read_manifest(paths.champion)), at
    verdict.challenger_id = bundle_id(read_manifest(paths.bundle))
    if verdict.promoted:
        install(paths.bundle, paths.champion)
    (log.warning if verdict.forced or not verdict.promoted else log.info)(f"champion: {verdict.reason}")
    paths.verdicts.parent.mkdir(parents=True, exist_ok=True)
    with paths.verdicts.open("a") as f:
        f.write(json.dumps(asdict(verdict), default=_plain) + "\n")
    return verdict


def install(bundle: Path, target: Path) -> None:
    """Copy ``bundle`` to ``target``, replacing it whole (a copy beside it, then renames)."""
    fresh, old = target.with_name(target.name + ".new"), target.with_name(target.name + ".old")
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(bundle, fresh)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def read_verdicts(paths: Paths) -> list[dict]:
    if not paths.verdicts.exists():
        return []
    return [json.loads(line) for line in paths.verdicts.read_text().splitlines() if line.strip()]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)
