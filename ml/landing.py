"""The landing folder the new-data sensor watches: new manifests (``.csv`` / ``.parquet``) and
new photo folders dropped there each start one refresh of the chain from ``raw_locations``.

An entry's signature is its size and modification time (a folder's: the newest file inside and
the file count), so an entry triggers once, and again only when it changes. Hidden entries and
files still being written (modified less than ``settle_s`` ago) wait for the next tick.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

MANIFEST_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class AutomationConfig:
    SECTION: ClassVar[str] = "automation"

    retrain_cron: str  # the retraining schedule (cron, in timezone)
    timezone: str
    schedule_enabled: bool  # the schedule starts switched on (else: switch it on in the UI)
    landing: str  # folder watched for new manifests / photo folders (relative to the root)
    sensor_enabled: bool
    sensor_interval_s: int
    settle_s: float  # an entry modified more recently than this is still arriving
    dvc_push: bool  # after each materialization's `dvc commit`, `dvc push` its stage (a remote must be set)
    dvc_wait_s: int  # longest wait for DVC's repository lock (another DVC process holds it) before the step fails


@dataclass(frozen=True)
class Arrival:
    name: str
    path: Path
    source: str  # manifest | exif_folder
    signature: str


def _signature(path: Path) -> tuple[str, float] | None:
    if path.is_file():
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}", st.st_mtime
    files = [p for p in path.rglob("*") if p.is_file()]
    if not files:
        return None
    newest = max(p.stat().st_mtime_ns for p in files)
    return f"{len(files)}:{newest}", newest / 1e9


def scan_landing(folder: Path, cursor: str | None, settle_s: float, now: float | None = None):
    """(new or changed arrivals, the new cursor). The cursor is JSON {name: signature}."""
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    now = time.time() if now is None else now
    arrivals = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.is_file() and path.suffix.lower() not in MANIFEST_SUFFIXES:
                continue
            sig = _signature(path)
            if sig is None or now - sig[1] < settle_s or seen.get(path.name) == sig[0]:
                continue
            source = "manifest" if path.is_file() else "exif_folder"
            arrivals.append(Arrival(path.name, path.resolve(), source, sig[0]))
            seen[path.name] = sig[0]
    return arrivals, json.dumps(seen, sort_keys=True)
