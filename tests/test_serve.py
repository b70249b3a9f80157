"""roost serve's API over HTTP: the server started as a user starts it (on 127.0.0.1, a free
port, the smoke bundle), every request bounded by a timeout; stopped by its process id."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml
from PIL import Image

from ml.paths import Paths
from ml.privacy.audit import audit_bytes
from ml.privacy.formats import jpeg_segments
from tests.conftest import REPO
from tests.test_privacy import PHOTOS
from tests.test_ui import free_port


@pytest.fixture
def server(smoke_chain, tmp_path):
    root, _ = smoke_chain
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["serve"]["max_file_mb"] = 1  # a 1.5 MB upload is over it
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "ml.cli",
        "serve",
        "--bundle",
        str(Paths(root).bundle),
        "--port",
        str(port),
        "--params",
        str(tmp_path / "params.yaml"),
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/api/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("roost serve did not answer within 120 s")
    try:
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def files(*paths):
    return [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def test_health_page_and_countries(server):
    health = requests.get(server + "/api/health", timeout=10).json()
    assert health["status"] == "ok" and health["schema_version"] == 1 and len(health["bundle"]) == 16
    page = requests.get(server + "/", timeout=10)
    assert page.ok and "Drop photos here" in page.text and "terrain renderings" in page.text  # the domain warning
    countries = requests.get(server + "/api/countries", timeout=10).json()
    assert countries["type"] == "FeatureCollection" and len(countries["features"]) > 200


def test_predict_audit_and_strip_with_a_bad_file_in_the_batch(server):
    bad = ("files", ("broken.jpg", b"\xff\xd8\xff\xe0 not really", "image/jpeg"))
    reply = requests.post(server + "/api/predict", files=[*files(PHOTOS / "DSCN0010.jpg"), bad], timeout=60)
    good, broken = reply.json()
    assert reply.ok and good["input"] == "DSCN0010.jpg" and -90 <= good["lat"] <= 90 and len(good["top_cells"]) >= 1
    assert "broken.jpg" in broken["error"]
    audits = requests.post(server + "/api/audit", files=[*files(PHOTOS / "DSCN0010.jpg"), bad], timeout=60).json()
    assert "GPSLatitude" in {f["field"] for f in audits[0]["findings"]} and "error" in audits[1]
    stripped = requests.post(server + "/api/strip", files=files(PHOTOS / "DSCN0010.jpg"), timeout=60)
    assert stripped.ok and audit_bytes(stripped.content, "copy", Image.MAX_IMAGE_PIXELS)[1] == []
    a, b = (PHOTOS / "DSCN0010.jpg").read_bytes(), stripped.content
    ja, jb = jpeg_segments(a), jpeg_segments(b)
    assert a[ja.scan_start : ja.scan_end] == b[jb.scan_start : jb.scan_end]
    grouped = requests.post(
        server + "/api/predict?group=1", files=files(PHOTOS / "DSCN0010.jpg", PHOTOS / "DSCN0042.jpg"), timeout=60
    ).json()
    assert len(grouped) == 1 and grouped[0]["views"] == 2
    overlay = requests.post(server + "/api/explain", files=files(PHOTOS / "DSCN0010.jpg"), timeout=60)
    assert overlay.ok and overlay.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_limits_and_concurrent_requests(server):
    big = io.BytesIO()
    Image.effect_noise((1000, 1000), 80).convert("RGB").save(big, "PNG")  # ~1.5 MB of noise
    reply = requests.post(
        server + "/api/predict", files=[("files", ("big.png", big.getvalue(), "image/png"))], timeout=60
    )
    assert reply.status_code == 413 and "serve.max_file_mb" in reply.json()["error"]
    assert requests.post(server + "/api/predict", timeout=30).status_code == 400  # no files

    def one(_):
        return requests.post(server + "/api/predict", files=files(PHOTOS / "Kodak_CX7530.jpg"), timeout=120).json()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(8)))
    assert all(a[0]["input"] == "Kodak_CX7530.jpg" and "lat" in a[0] for a in answers)
    assert len({(a[0]["lat"], a[0]["lon"]) for a in answers}) == 1  # the same answer whatever the interleaving
