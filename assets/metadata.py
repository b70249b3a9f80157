"""Metadata a person wants to see in the Dagster UI: counts as tables, pictures inline."""

from __future__ import annotations

import base64
from numbers import Integral

import dagster as dg


def counts_table(counts: dict[str, int], key: str = "reason", value: str = "rows") -> dg.MetadataValue:
    if not counts:
        return dg.MetadataValue.md("_none_")
    lines = [f"| {key} | {value} |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return dg.MetadataValue.md("\n".join(lines))


def png(data: bytes, alt: str) -> dg.MetadataValue:
    """An inline picture (the UI renders Markdown images given as data URIs)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode()})")


def frame_table(frame) -> dg.MetadataValue:
    """A small DataFrame as a Markdown table (one row a record)."""
    if not len(frame):
        return dg.MetadataValue.md("_none_")
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(f"{v:,}" if isinstance(v, Integral) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return dg.MetadataValue.md("\n".join(lines))


def makeup_table(makeup: dict) -> dg.MetadataValue:
    """val's and test's shares (%) per continent and in the largest training countries."""
    lines = ["| region | val % | test % | gap |", "|---|---:|---:|---:|"]
    for group in ("continents", "countries"):
        for name, v in makeup[group].items():
            lines.append(f"| {name} | {v['val']:.1f} | {v['test']:.1f} | {abs(v['val'] - v['test']):.1f} |")
    return dg.MetadataValue.md("\n".join(lines))
