"""The Street View client against a local stub server on 127.0.0.1: coverage, retries, truncated
bodies, the key never written anywhere, the rate limiter, and an interrupted run resumed."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from assets.resources import RoostResource
from ml.data.streetview import RateLimiter, StreetViewClient, StreetViewError, apply_panoramas
from ml.paths import Paths
from ml.store import read_table
from orchestration.definitions import ASSETS
from tests.conftest import REPO, make_root

KEY = "TEST-KEY-d41d8cd98f00b204e9800998ecf8427e"


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG")
    return buf.getvalue()


class Stub:
    """Metadata per location (by rounded lat): OK with a panorama, or a status. Image faults per
    panorama: a list of answers served in turn ("429", "500", "truncated", "garbage"), then
    the JPEG; "always500" never recovers."""

    def __init__(self, coverage, faults: dict[str, list[str]] | None = None):
        self.coverage, self.faults = coverage, {k: list(v) for k, v in (faults or {}).items()}
        self.log: list[tuple[str, dict]] = []
        self.images_served = 0
        self.lock = threading.Lock()
        self.served_event = threading.Event()
        self.serve_limit = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                with stub.lock:
                    stub.log.append((url.path, q))
                if q.get("key") != KEY:
                    return self._send(403, b"forbidden")
                if url.path.endswith("/metadata"):
                    lat = round(float(q["location"].split(",")[0]), 3)
                    if callable(stub.coverage):
                        answer = stub.coverage(lat)
                    else:
                        answer = stub.coverage.get(lat, {"status": "ZERO_RESULTS"})
                    return self._send(200, json.dumps(answer).encode(), "application/json")
                pano, heading = q["pano"], q["heading"]
                with stub.lock:
                    queue = stub.faults.get(f"{pano}@{heading}") or stub.faults.get(pano) or []
                    fault = queue.pop(0) if queue and queue[0] != "always500" else (queue[0] if queue else None)
                if fault in ("429", "500", "always500"):
                    return self._send(429 if fault == "429" else 500, b"try later")
                body = jpeg(hash((pano, heading)) % 1000)
                if fault == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault == "garbage":
                    body = body[: len(body) // 2]  # a short JPEG with a consistent length
                with stub.lock:
                    stub.images_served += 1
                    if stub.serve_limit and stub.images_served >= stub.serve_limit:
                        stub.served_event.set()
                return self._send(200, body, "image/jpeg")

            def _send(self, code, body, ctype="text/plain"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/maps/api/streetview"

    def image_requests(self) -> Counter:
        return Counter(f"{q['pano']}@{q['heading']}" for p, q in self.log if not p.endswith("/metadata"))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def pano(pid: str, lat: float, lon: float, date: str = "2021-06") -> dict:
    return {"status": "OK", "pano_id": pid, "location": {"lat": lat, "lng": lon}, "date": date}


LOCATIONS = pd.DataFrame(
    {
        "id": ["paris", "ocean", "rome", "oslo"],
        "lat": [48.858, 0.5, 41.9, 59.91],
        "lon": [2.294, -30.0, 12.5, 10.75],
    }
)
COVERAGE = {48.858: pano("P1", 48.8581, 2.2941), 41.9: pano("R1", 41.9003, 12.4998), 59.91: pano("O1", 59.9101, 10.75)}


def overrides(stub: Stub, cache: Path, **extra) -> dict:
    sv = {
        "base_url": stub.url,
        "requests_per_s": 0,
        "timeout_s": 5,
        "max_retries": 3,
        "backoff_s": 0.01,
        "cache": str(cache),
    } | extra
    images = yaml_section("location_images")
    return {"location_images": {"source": "streetview", "workers": 1, "streetview": images["streetview"] | sv}}


def yaml_section(name: str) -> dict:
    import yaml

    return yaml.safe_load((REPO / "params.yaml").read_text())[name]


def build(root: Path, locations: pd.DataFrame):
    from ml.config import load_config
    from ml.data.views import build_location_images
    from ml.settings import ImagesConfig

    cfg = load_config(ImagesConfig, root / "params.yaml")
    return build_location_images(locations, cfg, root / "data" / "reference", root, root / "shards")


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", KEY)


def test_panoramas_views_skips_and_retries(tmp_path, key):
    faults = {"R1@90": ["429", "500", "truncated"], "O1@180": ["always500"], "P1@270": ["garbage"]}
    with Stub(COVERAGE, faults) as stub:
        root = make_root(tmp_path / "p", overrides=overrides(stub, tmp_path / "cache"))
        result = build(root, LOCATIONS)
    images, rejected = result.images, result.rejected
    assert sorted(set(images["location_id"])) == ["oslo", "paris", "rome"]
    assert (images.groupby("location_id").size() == pd.Series({"oslo": 3, "paris": 4, "rome": 4})).all()
    assert rejected[["location_id", "reason"]].values.tolist() == [["oslo", "gave up after retries"]]
    assert result.views_expected == 12 == len(images) + len(rejected)
    skipped = result.rejected_locations.set_index("location_id")
    assert skipped.loc["ocean", "reason"] == "no street view coverage"
    p = result.panoramas.set_index("location_id")
    assert p.loc["paris", "pano_id"] == "P1" and p.loc["paris", "pano_date"] == "2021-06"
    assert p.loc["rome", "offset_m"] == pytest.approx(36.0, abs=2.0)  # 0.0003 deg lat, 0.0002 deg lon
    assert stub.image_requests()["R1@90"] == 4  # 429, 500, truncated, then the image
    assert stub.image_requests()["O1@180"] == 4  # 1 try + 3 retries, bounded
    assert stub.image_requests()["P1@270"] == 2  # a body that does not decode is fetched again
    assert result.counts["locations_skipped"] == 1 and result.counts["retries"] >= 7
    moved = apply_panoramas(LOCATIONS, result.panoramas).set_index("id")
    assert moved.loc["rome", ["lat", "lon"]].tolist() == [41.9003, 12.4998]
    assert moved.loc["rome", "requested_lat"] == 41.9 and np.isnan(moved.loc["ocean", "pano_offset_m"])


def test_the_key_is_never_written(tmp_path, key, capfd):
    """The whole asset through Dagster, then every file it wrote and every log line grepped."""

    def coverage(lat):  # a panorama, no coverage, or an error answer that echoes the key
        if int(lat * 1000) % 5 == 0:
            return {"status": "REQUEST_DENIED", "error_message": f"The provided API key {KEY} is invalid."}
        return pano(f"L{lat:.3f}", lat + 0.0001, 0.0) if int(lat * 1000) % 2 else {"status": "ZERO_RESULTS"}

    with Stub(coverage) as stub:
        settings = overrides(stub, tmp_path / "p" / "data" / "cache" / "sv")
        settings["raw_locations"] = {"n_locations": 40}
        root = make_root(tmp_path / "p", overrides=settings)
        instance = dg.DagsterInstance.ephemeral()
        resources = {"roost": RoostResource(root=str(root))}
        assert dg.materialize(ASSETS[:3], resources=resources, instance=instance).success
    written = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and "reference" not in p.parts]
    assert any(p.suffix == ".duckdb" for p in written) and any(p.suffix == ".jpg" for p in written)
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    logs = instance.all_logs(instance.get_runs()[0].run_id)
    assert all(KEY not in str(e) for e in logs)
    out, err = capfd.readouterr()
    assert KEY not in out and KEY not in err
    db = Paths(root).asset_db("location_images")
    panoramas = read_table(db, "panoramas")
    lost = read_table(db, "rejected_locations")
    assert len(panoramas) > 0 and (lost["reason"] == "no street view coverage").sum() > 0
    denied = lost[lost["reason"] == "metadata status REQUEST_DENIED"]
    assert len(denied) > 0 and denied["detail"].str.contains("The provided API key *** is invalid", regex=False).all()


def test_errors_do_not_leak_the_key(tmp_path):
    from ml.config import from_dict
    from ml.settings import StreetViewConfig

    cfg = from_dict(
        StreetViewConfig,
        yaml_section("location_images")["streetview"]
        | {
            "base_url": "http://127.0.0.1:9/nothing",
            "max_retries": 1,
            "backoff_s": 0,
            "timeout_s": 1,
            "requests_per_s": 0,
        },
        "test",
    )
    client = StreetViewClient(cfg, KEY, tmp_path, sleep=lambda s: None)
    with pytest.raises(StreetViewError) as e:
        client.metadata(1.0, 2.0)
    assert KEY not in str(e.value) and e.value.reason == "gave up after retries"
    with pytest.raises(StreetViewError, match="GOOGLE_MAPS_API_KEY"):
        StreetViewClient(cfg, "", tmp_path)


def test_rate_limiter_spaces_calls():
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.wait()
    assert slept == pytest.approx([0.25] * 4) and now[0] == pytest.approx(1.0)
    now[0] += 10.0  # idle: no wait
    limiter.wait()
    assert len(slept) == 4


RESUME_SCRIPT = """
import sys
import pandas as pd
from tests.test_streetview import build
locations = pd.read_json(sys.argv[2])
build(__import__("pathlib").Path(sys.argv[1]), locations)
"""


def test_an_interrupted_run_resumes(tmp_path, key):
    """A real process kill half way; the second run fetches only what the first did not keep."""
    many = pd.DataFrame({"id": [f"l{i}" for i in range(6)], "lat": [10.0 + i for i in range(6)], "lon": [20.0] * 6})
    coverage = {10.0 + i: pano(f"X{i}", 10.0 + i, 20.0) for i in range(6)}
    cache = tmp_path / "cache"
    with Stub(coverage) as stub:
        root = make_root(tmp_path / "p", overrides=overrides(stub, cache, requests_per_s=20))
        many.to_json(tmp_path / "locations.json")
        stub.serve_limit = 9
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-c", RESUME_SCRIPT, str(root), str(tmp_path / "locations.json")], cwd=REPO, env=env
        )
        try:
            assert stub.served_event.wait(timeout=120), "the first run never got going"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        kept = len(list((cache / "images").glob("*.jpg")))
        assert 8 <= kept < 24  # the 9th may have been in flight when the process died
        stub.log.clear()
        result = build(root, many)
    second = stub.image_requests()
    assert len(result.images) == 24
    assert sum(second.values()) == 24 - kept  # nothing kept is fetched again
    assert result.counts["cached_images"] == kept
    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix not in (".jpg", ".json")]
