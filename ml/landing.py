"""The landing folder: every manifest (``.csv`` / ``.parquet``) or photo folder in it is a **batch**
of new data that adds to the corpus (``ml.data.corpus``: the configured source plus every batch),
and the new-data sensor refreshes the chain when one arrives, changes or is removed.

A batch's name is its entry's name without the manifest suffix; it namespaces the batch's
location ids (``<batch>/<id>``). Batches are dealt into the split in name order, so that a later
batch never changes an earlier one's locations: ``roost batches add`` names a copy
``<YYYYmmdd-HHMMSS>-<name>`` so that name order is arrival order. Removing a batch moves it out
of the folder (``roost batches remove``), to a folder of removed batches where it can be found.

The sensor's signature of an entry is its size and modification time (a folder's: the newest
file inside and the file count), so an entry triggers once, and again only when it changes.
Hidden entries and files still being written (modified less than ``settle_s`` ago) wait for the
next tick. A batch's own signature (``batch_signature``) is a digest of its content.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

MANIFEST_SUFFIXES = (".csv", ".parquet")
BASE = "base"  # the configured source's batch name (a landed batch may not take it)


class LandingError(ValueError):
    """The landing folder holds something that cannot be a batch (a clash of names)."""


@dataclass(frozen=True)
class AutomationConfig:
    SECTION: ClassVar[str] = "automation"

    retrain_cron: str  # the retraining schedule (cron, in timezone)
    timezone: str
    schedule_enabled: bool  # the schedule starts switched on (else: switch it on in the UI)
    landing: str  # folder of landed batches, watched for new ones (relative to the root)
    removed: str  # where `roost batches remove` moves a batch (relative to the root; outside DVC's view)
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


@dataclass(frozen=True)
class Batch:
    name: str  # the namespace of its ids
    path: Path
    source: str  # manifest | exif_folder


def _is_entry(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    return path.is_dir() or (path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES)


def batch_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def landed_batches(folder: Path) -> list[Batch]:
    """The batches in ``folder``, in name order (the order they are dealt into the split)."""
    if not folder.is_dir():
        return []
    batches: dict[str, Batch] = {}
    for path in sorted(p for p in folder.iterdir() if _is_entry(p)):
        name = batch_name(path)
        if name == BASE:
            raise LandingError(f"{path}: the batch name {BASE!r} is the configured source's; rename the entry")
        if name in batches:
            raise LandingError(
                f"{folder}: {batches[name].path.name} and {path.name} are both batch {name!r}; rename or remove one"
            )
        batches[name] = Batch(name, path.resolve(), "manifest" if path.is_file() else "exif_folder")
    return sorted(batches.values(), key=lambda b: b.name)


def batch_signature(path: Path) -> str:
    """A digest of a batch's content: a manifest's bytes, a folder's files (paths and bytes)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f != path:
            digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def add_batch(folder: Path, source: Path, name: str = "", now: datetime | None = None) -> Path:
    """Copy a manifest or photo folder into ``folder`` as ``<YYYYmmdd-HHMMSS>-<name>``."""
    source = Path(source)
    if not source.exists() or not _is_entry(source):
        raise LandingError(f"{source}: not a manifest (.csv/.parquet) or a folder of photos")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    stem = name or batch_name(source)
    target = folder / (f"{stamp}-{stem}" + (source.suffix.lower() if source.is_file() else ""))
    if target.exists() or batch_name(target) in {b.name for b in landed_batches(folder)}:
        raise LandingError(f"{target}: a batch of that name is there already")
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{target.name}.partial"  # hidden while copied: the sensor waits for it
    if source.is_file():
        shutil.copy2(source, partial)
    else:
        shutil.copytree(source, partial)
    partial.rename(target)
    return target


def remove_batch(folder: Path, removed: Path, name: str, now: datetime | None = None) -> Path:
    """Move batch ``name`` out of the landing folder into ``removed`` (kept, not deleted)."""
    found = {b.name: b for b in landed_batches(folder)}
    if name not in found:
        known = ", ".join(found) or "none"
        raise LandingError(f"no batch {name!r} in {folder} (batches: {known}); see `roost batches list`")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    removed.mkdir(parents=True, exist_ok=True)
    target = removed / f"{found[name].path.name}.removed-{stamp}"
    shutil.move(str(found[name].path), target)
    return target


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
    """(new or changed arrivals, names gone since the cursor, the new cursor). The cursor is
    JSON {name: signature} of the entries seen."""
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    now = time.time() if now is None else now
    arrivals, present = [], set()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if not _is_entry(path):
                continue
            present.add(path.name)
            sig = _signature(path)
            if sig is None or now - sig[1] < settle_s or seen.get(path.name) == sig[0]:
                continue
            source = "manifest" if path.is_file() else "exif_folder"
            arrivals.append(Arrival(path.name, path.resolve(), source, sig[0]))
            seen[path.name] = sig[0]
    gone = sorted(set(seen) - present)
    for name in gone:
        del seen[name]
    return arrivals, gone, json.dumps(seen, sort_keys=True)
