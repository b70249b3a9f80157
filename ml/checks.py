"""The pipeline's data checks as plain functions (Dagster's asset checks call them; tests call
them directly). Each returns ``(passed, details)``; details say what was counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

Result = tuple[bool, dict]


def rows_reconcile(accepted: int, rejected: int, inputs: int, what: str) -> Result:
    """accepted + rejected == inputs: nothing dropped silently."""
    ok = accepted + rejected == inputs
    return ok, {
        "accepted": accepted,
        "rejected": rejected,
        "inputs": inputs,
        "what": what,
        "missing": inputs - accepted - rejected,
    }


def raw_rows_reconcile(locations: pd.DataFrame, rejected: pd.DataFrame, batches: pd.DataFrame) -> Result:
    """Per batch of the corpus, every input row (a photo folder's: every photo) once: accepted
    or rejected, never both, none lost; and no row outside a listed batch."""
    per_batch, bad = {}, []
    for b in batches.itertuples():
        mine, lost = locations[locations["batch"] == b.batch], rejected[rejected["batch"] == b.batch]
        if b.source == "exif_folder":  # a location holds one or more photos
            accepted = int(mine["image_paths"].map(len).sum())
        else:
            accepted = len(mine)
            both = set(mine["input_row"]) & set(lost["input_row"])
            if both:
                bad.append(f"{b.batch}: input rows both accepted and rejected: {sorted(both)[:10]}")
        per_batch[b.batch] = {"accepted": accepted, "rejected": len(lost), "inputs": int(b.input_rows)}
        if accepted + len(lost) != b.input_rows:
            bad.append(f"{b.batch}: {accepted} accepted + {len(lost)} rejected != {b.input_rows} input rows")
    listed = set(batches["batch"])
    strays = (set(locations["batch"]) | set(rejected["batch"])) - listed
    if strays:
        bad.append(f"rows of batches not in the batches table: {sorted(strays)}")
    return not bad, {"batches": per_batch, "problems": bad}


def views_reconcile(
    images: pd.DataFrame, rejected: pd.DataFrame, lost: pd.DataFrame, locations: pd.DataFrame, views_expected: int
) -> Result:
    """Views expected = stored + rejected; every location has a view or is in rejected_locations."""
    with_views = set(images["location_id"].astype(str))
    without = set(lost["location_id"].astype(str))
    ids = set(locations["id"].astype(str))
    details = {
        "views_expected": views_expected,
        "stored": len(images),
        "rejected": len(rejected),
        "locations": len(ids),
        "with_views": len(with_views),
        "without_views": len(without),
    }
    ok = len(images) + len(rejected) == views_expected and with_views | without == ids and not (with_views & without)
    return ok, details


def captions_cover_views(captions: pd.DataFrame, images: pd.DataFrame) -> Result:
    views = set(zip(images["location_id"].astype(str), images["view"].astype(int)))
    captioned = set(zip(captions["location_id"].astype(str), captions["view"].astype(int)))
    details = {
        "views": len(views),
        "captioned": len(captioned),
        "without_caption": len(views - captioned),
        "unknown": len(captioned - views),
    }
    return views == captioned, details


def one_cell_per_training_point(assignments: pd.DataFrame, train_ids, n_cells: int) -> Result:
    """Every training point in exactly one geocell, and every cell id real."""
    ids = assignments["id"].astype(str)
    cell = assignments["cell_id"].to_numpy()
    details = {
        "training_points": len(set(map(str, train_ids))),
        "assigned": int(ids.nunique()),
        "in_several_cells": int(ids.duplicated().sum()),
        "without_cell": int(((cell < 0) | (cell >= n_cells)).sum()),
        "missing": len(set(map(str, train_ids)) - set(ids)),
    }
    ok = details["in_several_cells"] == details["without_cell"] == details["missing"] == 0
    return ok and details["assigned"] == details["training_points"], details


def finite_tensors(files: list[Path]) -> Result:
    """No NaN or inf in any tensor of the safetensors files (weights, embeddings)."""
    from safetensors.numpy import load_file

    bad, total = {}, 0
    for f in files:
        for name, value in load_file(str(f)).items():
            total += value.size
            if np.issubdtype(value.dtype, np.floating):
                n = int((~np.isfinite(value)).sum())
                if n:
                    bad[f"{Path(f).parent.name}/{name}"] = n
    return not bad, {
        "values": total,
        "non_finite": sum(bad.values()),
        "tensors_with_non_finite": dict(list(bad.items())[:10]),
    }


# what the check compares: the radii a model with cells ~100-300 km wide can be judged at,
# the median (lower is better) and the mean GeoGuessr score. At 1 / 25 / 200 km a constant
# guess wins by luck whenever a held-out block sits beside it (the US medoid, in Illinois,
# is within 200 km of 7.4% of the default's val: one block near Chicago).
CHECKED = {"within_750km": 1, "within_2500km": 1, "median_km": -1, "geoguessr": 1}  # 1: higher is better


def beats_medoid(model: dict, medoid: dict) -> Result:
    """The model is at least as good as the baseline on every ``CHECKED`` metric and better on
    one at least (a tie everywhere is no skill)."""
    rows = {k: (model.get(k, float("nan")), medoid.get(k, float("nan"))) for k in CHECKED}
    worse = [k for k, (m, b) in rows.items() if not CHECKED[k] * m >= CHECKED[k] * b]
    better = [k for k, (m, b) in rows.items() if CHECKED[k] * m > CHECKED[k] * b]
    details = {k: {"model": round(m, 2), "baseline": round(b, 2)} for k, (m, b) in rows.items()}
    return (not worse and bool(better)), details | {"worse_at": worse}


def beats_baselines(model: dict, baselines: dict[str, dict]) -> Result:
    """``beats_medoid``'s rule against every no-skill baseline given (empty ones left out)."""
    results = {name: beats_medoid(model, b) for name, b in baselines.items() if b}
    worse = {name: r[1]["worse_at"] for name, r in results.items() if not r[0]}
    return bool(results) and not worse, {name: r[1] for name, r in results.items()} | {"failed": worse}


def bundle_verifies(folder: Path) -> Result:
    # imported here: ml.bundle pulls in torch (2.5 s), which no other check needs, and every
    # stage's checks import this module in the stage's process (benchmarks.pipeline)
    from ml.bundle import BundleError, verify_bundle

    try:
        manifest = verify_bundle(folder)
    except BundleError as e:
        return False, {"error": str(e)}
    return True, {"files_verified": len(manifest["files"])}
