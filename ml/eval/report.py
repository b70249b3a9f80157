"""The benchmark report: Markdown and self-contained HTML per evaluation set, DVC metrics and
plots files, and the pictures (cumulative error curve, guesses vs truth on a map)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from ml.eval.evaluate import SetResult
from ml.eval.metrics import MACRO_MIN, largest_share
from ml.geo.maps import figure_png, finish_png, world_axes
from ml.geo.scores import RADII_KM
from ml.settings import GUESSES

# PIGEON's published figures (Haas et al., CVPR 2024, arXiv 2307.05845), for context only:
# a different task and data than Roost's embedded default.
PAPER = [
    {"system": "PIGEON, street-view holdout", "within_25km": 40.4, "country_accuracy": 91.96, "median_km": 44.0},
    {
        "system": "PIGEOTTO, IM2GPS3k",
        "within_1km": 11.3,
        "within_25km": 36.7,
        "within_200km": 53.8,
        "within_750km": 72.4,
        "within_2500km": 85.3,
    },
]
ORDER = [f"within_{r}km" for r in RADII_KM] + ["median_km", "geoguessr"]  # the metrics tables' rows, in order
ORDER += ["country_accuracy", "country_macro_accuracy", "admin1_accuracy", "cell_top1", "cell_top5"]


def error_curve(result: SetResult) -> pd.DataFrame:
    """Share of guesses within each distance (log-spaced km), for DVC plots."""
    d = np.sort(result.frame["distance_km"].to_numpy())
    km = np.unique(np.round(np.logspace(0, np.log10(20000), 60), 1))
    return pd.DataFrame({"km": km, "percent_within": [float(np.mean(d <= k) * 100) if len(d) else 0.0 for k in km]})


def curve_png(result: SetResult) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = error_curve(result)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=90)
    ax.plot(curve["km"], curve["percent_within"], label="model")
    for name, b in result.baselines.items():
        ax.scatter([25, 200, 750, 2500], [b[f"within_{r}km"] for r in (25, 200, 750, 2500)], s=10, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("distance (km)")
    ax.set_ylabel("% of guesses within")
    ax.set_title(f"{result.name}: cumulative error", fontsize=9)
    ax.legend(fontsize=7)
    return figure_png(fig)


def guesses_png(result: SetResult, countries=None) -> bytes:
    fig, ax = world_axes(countries)
    f = result.frame
    for a, b, c, d in zip(f["lon"], f["lat"], f["guess_lon"], f["guess_lat"]):
        ax.plot([a, c], [b, d], color="#999999", linewidth=0.3)
    ax.scatter(f["lon"], f["lat"], s=3, c="#2ca02c", label="truth", linewidths=0)
    ax.scatter(f["guess_lon"], f["guess_lat"], s=3, c="#d62728", label="guess", linewidths=0)
    ax.legend(loc="lower left", fontsize=7, frameon=False)
    return finish_png(fig, ax, f"{result.name}: guesses vs truth")


def metric_table(result: SetResult) -> pd.DataFrame:
    rows = []
    for name in ORDER:
        if name not in result.metrics:
            continue
        m = result.metrics[name]
        row = {"metric": name, "model": round(m["value"], 2), "95% interval": f"{m['low']:.2f} - {m['high']:.2f}"}
        for b, values in result.baselines.items():
            row[b] = round(values[name], 2) if name in values else ""
        rows.append(row)
    return pd.DataFrame(rows)


OTHER_ORDER = ORDER[:-2]  # rows of other systems: no cell top-1 / top-5


def rows_table(rows: dict[str, dict], label: str) -> pd.DataFrame:
    """One row per other system scored on the same locations (a CLIP model's zero-shot
    prompts, the model's other ``refine.guess`` modes), with intervals."""
    out = []
    for name, metrics in rows.items():
        row = {"system": f"{label}{name}"}
        for k in OTHER_ORDER:
            m = metrics[k]
            row[k] = f"{m['value']:.2f} ({m['low']:.2f} - {m['high']:.2f})"
        out.append(row)
    return pd.DataFrame(out)


def markdown_table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def mix_note(result: SetResult) -> str:
    """What the country accuracy is made of: the set's largest country and the macro average."""
    country, share = largest_share(result.frame["country"])
    counts = result.frame["country"].value_counts()
    return (
        f"The country mix: the largest country of this set, {country or '-'}, holds {share:.1f}% of its locations; "
        f"`country_macro_accuracy` averages the accuracy of the {int((counts >= MACRO_MIN).sum())} countries with "
        f"{MACRO_MIN} locations or more, each counted once, so that one dominant country cannot flatter the model."
    )


def write_report(result: SetResult, folder: Path, domain: str, countries=None, ablations: str = "") -> dict[str, Path]:
    """Markdown + self-contained HTML for one set; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    curve, world = curve_png(result), guesses_png(result, countries)
    (folder / f"{result.name}_error_curve.png").write_bytes(curve)
    (folder / f"{result.name}_guesses.png").write_bytes(world)
    table = metric_table(result)
    intro = (
        f"Evaluation set `{result.name}`: {len(result.frame)} locations"
        + (f" ({result.failed} could not be read)" if result.failed else "")
        + f". The model was trained on **{domain}**; its figures describe that task, not street-view photos."
    )
    paper = markdown_table(pd.DataFrame(PAPER).fillna(""))
    if ablations:  # make ablations' table, a level below this report's title
        ablations = "\n".join(("#" + line) if line.startswith("#") else line for line in ablations.splitlines()) + "\n"
    blocks_note = (
        "" if result.bootstrap_unit == "locations" else ", as the split held them out: a block's errors come together"
    )
    zero_shot = ""
    if result.zero_shot:
        zero_shot = f"""## CLIP zero-shot, no head (value and 95% interval)

Hierarchical prompts: the country first ("A Street View photo in {{country}}."), then admin-1
regions within the best countries; the guess is the chosen region's training centroid.

{markdown_table(rows_table(result.zero_shot, "zero-shot "))}
"""
    guesses = ""
    if result.guesses:
        configured = next(g for g in GUESSES if g not in result.guesses)
        guesses = f"""## The same model, other guesses (`refine.guess`; value and 95% interval)

The model row above starts from the `{configured}` cell. `top_cell`: PIGEON's most probable
cell; `min_expected_distance`: the cell whose centroid minimises the probability-weighted
distance to every centroid; `country_first`: the most probable cell of the most probable
country (cell probabilities summed by country). Refinement as configured in each.

{markdown_table(rows_table(result.guesses, "guess: "))}
"""
    md = f"""# Roost benchmark report: {result.name}

{intro}

## Metrics (bootstrap 95% intervals) and no-skill baselines

Intervals: the bootstrap resamples {result.bootstrap_unit}{blocks_note}.

{markdown_table(table)}

{mix_note(result)}

{zero_shot}
{guesses}
## By distance to the nearest training location

{markdown_table(result.strata)}

## By continent

{markdown_table(result.by_continent.round(2))}

![cumulative error]({result.name}_error_curve.png)

![guesses vs truth]({result.name}_guesses.png)

{ablations}
## For context only: PIGEON's published figures

A different task and different data (street-view photos, IM2GPS3k), from Haas et al., "PIGEON:
Predicting Image Geolocations", CVPR 2024 (arXiv 2307.05845). Not comparable with the table above.

{paper}
"""
    (folder / f"{result.name}.md").write_text(md)
    img = lambda data: f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}">'  # noqa: E731
    body = md.replace(f"![cumulative error]({result.name}_error_curve.png)", img(curve)).replace(
        f"![guesses vs truth]({result.name}_guesses.png)", img(world)
    )
    (folder / f"{result.name}.html").write_text(markdown_html(body, result.name))
    return {"md": folder / f"{result.name}.md", "html": folder / f"{result.name}.html"}


def markdown_html(markdown: str, title: str) -> str:
    """A minimal Markdown (headings, tables, paragraphs, inline images) to HTML renderer, so the
    report stays one self-contained file with no extra dependency."""
    out, table = [], []

    def flush_table():
        if table:
            rows = [r.strip("|").split(" | ") for r in table if not set(r) <= set("|-")]
            out.append("<table>")
            for k, cells in enumerate(rows):
                tag = "th" if k == 0 else "td"
                out.append("<tr>" + "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in cells) + "</tr>")
            out.append("</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("<img"):
            out.append(f"<p>{line}</p>")
        elif line.strip():
            text = html.escape(line).replace("**", "")
            out.append(f"<p>{text}</p>")
    flush_table()
    style = "body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"  # noqa: E501
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{chr(10).join(out)}</body></html>"  # noqa: E501


METRICS_FILE = "metrics.json"  # metrics_json's file in the report's folder (DVC metrics)


def metrics_json(results: list[SetResult]) -> dict:
    """The DVC metrics file: each set's metric values and baselines (flat enough to diff)."""
    out = {}
    for r in results:
        out[r.name] = {k: round(v["value"], 4) for k, v in r.metrics.items()}
        # nested numbers, not lists: `dvc exp show` keeps only numeric leaves
        out[r.name]["intervals"] = {
            k: {"low": round(v["low"], 4), "high": round(v["high"], 4)} for k, v in r.metrics.items()
        }
        out[r.name]["n"] = len(r.frame)
        out[r.name]["largest_country_share"] = round(largest_share(r.frame["country"])[1], 2)
        out[r.name]["baseline_train_medoid_median_km"] = round(r.baselines["train_medoid"]["median_km"], 2)
        out[r.name]["baseline_random_median_km"] = round(r.baselines["random_train_location"]["median_km"], 2)
        largest = r.baselines.get("largest_country", {})
        for k in ("median_km", "within_750km", "within_2500km", "geoguessr", "country_accuracy"):
            if k in largest:
                out[r.name][f"baseline_largest_country_{k}"] = round(largest[k], 2)
        for model, metrics in r.zero_shot.items():
            key = "zero_shot_" + "".join(c if c.isalnum() else "_" for c in model)
            out[r.name][key] = {k: round(v["value"], 4) for k, v in metrics.items()}
        for mode, metrics in r.guesses.items():
            out[r.name][f"guess_{mode}"] = {k: round(v["value"], 4) for k, v in metrics.items()}
    return out
