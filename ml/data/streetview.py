"""location_images source ``streetview``: the Google Street View Static API, as PIGEON collected.

For each location (in order):

1. The free **metadata** endpoint (``{base_url}/metadata``) with the location and
   ``radius_m``: ``ZERO_RESULTS`` / ``NOT_FOUND`` mean no panorama nearby, and the location is
   skipped with that reason; ``OK`` gives the panorama's id, its real coordinates and its
   capture date. The location's training coordinates become the panorama's; the offset is
   recorded (``panoramas`` table; ``apply_panoramas`` is how the training assets read it).
2. One **image** per heading (``views`` of them: 0, 360/views, ...), requested by panorama id
   with ``size``, ``fov`` and ``pitch`` from params, then checked by the shared validation and
   stored like every other view.

The API key is read from the environment variable ``key_env``; it is sent in the query string
(the API's only way) and nowhere else: it is never logged, never in metadata, tables, files
or error messages (every message passes through ``redact``).

Robustness: a client-side rate limit (``requests_per_s``), a timeout per request, and bounded
retries with exponential backoff (``backoff_s * 2**attempt``, at most ``max_retries`` retries)
on 429, 5xx, connection errors, timeouts and truncated bodies. Resumable: metadata answers and
images are cached under ``cache`` (outside the asset's DVC outs, which DVC deletes before a
stage runs; written atomically, so an interrupted run leaves no partial file) and never fetched
again; a run stopped half way continues where it stopped.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.images import ImageRejected, View, load_image
from ml.geo.haversine import haversine_km
from ml.settings import StreetViewConfig

NO_COVERAGE = ("ZERO_RESULTS", "NOT_FOUND")
PANORAMA_COLUMNS = ["location_id", "pano_id", "pano_lat", "pano_lon", "requested_lat", "requested_lon",
                    "offset_m", "pano_date"]


class StreetViewError(RuntimeError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class RateLimiter:
    """At most ``per_s`` calls per second: each call waits until 1/per_s after the previous."""

    def __init__(self, per_s: float, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        self.interval = 1.0 / per_s if per_s > 0 else 0.0
        self.clock, self.sleep, self.next = clock, sleep, None

    def wait(self) -> None:
        now = self.clock()
        if self.next is not None and now < self.next:
            self.sleep(self.next - now)
            now = self.next
        self.next = now + self.interval


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _remove_stale_parts(cache: Path) -> None:
    """Half-written downloads of processes that died mid-write (``.<name>.<pid>.part``); a live
    process's own are left alone."""
    for part in cache.rglob(".*.part") if cache.exists() else []:
        pid = part.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                part.unlink(missing_ok=True)
            except PermissionError:
                pass  # another user's live process


class StreetViewClient:
    """Metadata and images, cached, rate-limited, retried. ``key`` never leaves the query."""

    def __init__(self, cfg: StreetViewConfig, key: str, cache: Path, sleep=time.sleep):
        if not key:
            raise StreetViewError(
                "no API key", f"set the environment variable {cfg.key_env} to your Street View Static API key"
            )
        self.cfg, self._key, self.cache, self._sleep = cfg, key, Path(cache), sleep
        self.limiter = RateLimiter(cfg.requests_per_s, sleep=sleep)
        self.counts = {"metadata_requests": 0, "image_requests": 0, "retries": 0, "cached_images": 0}
        _remove_stale_parts(self.cache)

    def redact(self, text: str) -> str:
        text = str(text)
        for form in {self._key, urllib.parse.quote(self._key, safe=""), urllib.parse.quote_plus(self._key)}:
            text = text.replace(form, "***")
        return text

    # -- HTTP ---------------------------------------------------------------------------------
    def _get(self, path: str, params: dict) -> bytes:
        query = urllib.parse.urlencode({**params, "key": self._key})
        url = f"{self.cfg.base_url.rstrip('/')}{path}?{query}"
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self.counts["retries"] += 1
                self._sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            self.limiter.wait()
            try:
                with urllib.request.urlopen(url, timeout=self.cfg.timeout_s) as response:  # noqa: S310
                    return response.read()
            except urllib.error.HTTPError as e:
                if e.code == 429 or e.code >= 500:
                    last = f"HTTP {e.code}"
                    continue
                raise StreetViewError(f"HTTP {e.code}", self.redact(e.reason)) from None
            except http.client.IncompleteRead as e:
                last = f"truncated body ({len(e.partial)} bytes)"
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException) as e:
                last = self.redact(f"{type(e).__name__}: {getattr(e, 'reason', e)}")
        raise StreetViewError("gave up after retries", f"{self.cfg.max_retries + 1} tries; last: {last}")

    # -- metadata and images ------------------------------------------------------------------
    def _meta_path(self, lat: float, lon: float) -> Path:
        c = self.cfg
        token = f"{lat:.7f},{lon:.7f},{c.radius_m},{c.outdoor_only}"
        return self.cache / "metadata" / f"{hashlib.sha1(token.encode()).hexdigest()}.json"

    def metadata(self, lat: float, lon: float) -> dict:
        """The metadata answer (cached unless it was a transient error status)."""
        path = self._meta_path(lat, lon)
        if path.exists():
            return json.loads(path.read_text())
        params = {"location": f"{lat:.7f},{lon:.7f}", "radius": self.cfg.radius_m}
        if self.cfg.outdoor_only:
            params["source"] = "outdoor"
        self.counts["metadata_requests"] += 1
        body = self._get("/metadata", params)
        try:
            answer = json.loads(body)
        except json.JSONDecodeError:
            raise StreetViewError("bad metadata answer", f"not JSON: {body[:60]!r}") from None
        status = answer.get("status", "")
        if status == "OK" or status in NO_COVERAGE:
            answer.pop("error_message", None)
            _atomic_write(path, json.dumps(answer).encode())
            return answer
        message = self.redact(answer.get("error_message", ""))
        raise StreetViewError(f"metadata status {status or 'missing'}", message)

    def _image_path(self, pano_id: str, heading: float) -> Path:
        c = self.cfg
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in pano_id)
        return self.cache / "images" / f"{safe}_h{heading:g}_s{c.size}_f{c.fov:g}_p{c.pitch:g}.jpg"

    def image(self, pano_id: str, heading: float) -> bytes:
        """One view of a panorama; a body that does not decode counts as truncated and is retried."""
        path = self._image_path(pano_id, heading)
        if path.exists():
            self.counts["cached_images"] += 1
            return path.read_bytes()
        params = {"pano": pano_id, "heading": f"{heading:g}", "size": f"{self.cfg.size}x{self.cfg.size}",
                  "fov": f"{self.cfg.fov:g}", "pitch": f"{self.cfg.pitch:g}"}
        for _ in range(self.cfg.max_retries + 1):
            self.counts["image_requests"] += 1
            data = self._get("", params)
            try:
                load_image(data, 64_000_000)
            except ImageRejected as e:
                last = e.reason
                self.counts["retries"] += 1
                continue
            _atomic_write(path, data)
            return data
        raise StreetViewError("image does not decode", f"after {self.cfg.max_retries + 1} tries: {last}")


def offset_m(lat1, lon1, lat2, lon2) -> float:
    return float(haversine_km(lat1, lon1, lat2, lon2) * 1000.0)


@dataclass
class StreetViewResult:
    views: list[View]
    panoramas: pd.DataFrame
    skipped: pd.DataFrame  # location_id, reason, detail: no coverage, or metadata failed
    counts: dict


def fetch_streetview(locations: pd.DataFrame, views: int, cfg: StreetViewConfig, root: Path, encode_view,
                     progress: Callable[[int, int], None] | None = None, sleep=time.sleep) -> StreetViewResult:
    """Every location's panorama and views; ``encode_view(bytes) -> (encoded, None) | (None,
    ImageRejected)`` applies the shared validation and storage format."""
    from tqdm import tqdm

    cache = Path(cfg.cache) if Path(cfg.cache).is_absolute() else Path(root) / cfg.cache
    client = StreetViewClient(cfg, os.environ.get(cfg.key_env, ""), cache, sleep=sleep)
    headings = [v * 360.0 / views for v in range(views)]
    out, panos, skipped = [], [], []
    bar = tqdm(total=len(locations), desc="street view", unit="loc", file=sys.stderr, disable=None)
    for n, row in enumerate(locations[["id", "lat", "lon"]].itertuples(index=False)):
        loc = str(row.id)
        try:
            meta = client.metadata(float(row.lat), float(row.lon))
        except StreetViewError as e:
            skipped.append((loc, e.reason, client.redact(e.detail)))
            bar.update(1)
            continue
        if meta.get("status") in NO_COVERAGE:
            skipped.append((loc, "no street view coverage", f"{meta['status']} within {cfg.radius_m} m"))
            bar.update(1)
            continue
        p_lat, p_lon = float(meta["location"]["lat"]), float(meta["location"]["lng"])
        pano = str(meta["pano_id"])
        panos.append((loc, pano, p_lat, p_lon, float(row.lat), float(row.lon),
                      offset_m(row.lat, row.lon, p_lat, p_lon), str(meta.get("date", ""))))
        for v, heading in enumerate(headings):
            original = f"streetview:{pano}@{heading:g}"
            try:
                data, rejected = encode_view(client.image(pano, heading))
            except StreetViewError as e:
                out.append(View(loc, v, heading, None, original=original, reason=e.reason, detail=client.redact(e.detail)))
                continue
            if rejected is not None:
                out.append(View(loc, v, heading, None, original=original, reason=rejected.reason, detail=rejected.detail))
            else:
                out.append(View(loc, v, heading, data, original=original))
        bar.update(1)
        if progress:
            progress(n + 1, len(locations))
    bar.close()
    counts = dict(client.counts)
    counts |= {"locations_requested": len(locations), "locations_with_panorama": len(panos),
               "locations_skipped": len(skipped)}
    return StreetViewResult(
        views=out,
        panoramas=pd.DataFrame(panos, columns=PANORAMA_COLUMNS),
        skipped=pd.DataFrame(skipped, columns=["location_id", "reason", "detail"]),
        counts=counts,
    )


def apply_panoramas(locations: pd.DataFrame, panoramas: pd.DataFrame | None) -> pd.DataFrame:
    """Locations whose views came from a Street View panorama take the panorama's coordinates
    (the request's are kept as ``requested_lat`` / ``requested_lon``, the distance as
    ``pano_offset_m``); other locations are unchanged."""
    out = locations.copy()
    out["requested_lat"], out["requested_lon"] = out["lat"], out["lon"]
    out["pano_offset_m"] = np.nan
    if panoramas is None or not len(panoramas):
        return out
    p = panoramas.drop_duplicates("location_id").set_index("location_id")
    ids = out["id"].astype(str)
    hit = ids.isin(p.index)
    out.loc[hit, "lat"] = p.loc[ids[hit], "pano_lat"].to_numpy()
    out.loc[hit, "lon"] = p.loc[ids[hit], "pano_lon"].to_numpy()
    out.loc[hit, "pano_offset_m"] = p.loc[ids[hit], "offset_m"].to_numpy()
    return out
