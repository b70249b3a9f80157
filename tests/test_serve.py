"""roost serve's API over HTTP: the server started as a user starts it (on 127.0.0.1, a free
port, the smoke bundle), every request bounded by a timeout; stopped by its process id."""

from __future__ import annotations

import base64
import io
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import yaml
from PIL import Image

from ml.paths import Paths
from ml.privacy.audit import audit_bytes
from ml.privacy.formats import jpeg_segments
from ml.serve.process import served
from tests.conftest import REPO
from tests.test_privacy import PHOTOS
from tests.test_ui import wait_for


@pytest.fixture
def server(smoke_chain, tmp_path):
    root, _ = smoke_chain
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["serve"]["max_file_mb"] = 1  # a 1.5 MB upload is over it
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["--params", str(tmp_path / "params.yaml"), "--threads", "1"]
    with served(Paths(root).bundle, *args, cwd=REPO, env=env) as server:
        yield server.base


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


def test_the_page_in_a_browser(server, browser, tmp_path):
    """Headless Chromium on the page: a GPS photo and a corrupt file uploaded together; the map,
    the country and the GPS finding for the photo, the corrupt file's own error beside it; the
    download button's copy (read back from the page's blob link) has no GPS and the same pixels."""
    from selenium.webdriver.common.by import By

    photo = PHOTOS / "DSCN0010.jpg"
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    browser.get(server + "/")
    assert "terrain renderings" in browser.find_element(By.ID, "domain-warning").text
    browser.find_element(By.ID, "files").send_keys(f"{photo}\n{corrupt}")
    browser.find_element(By.ID, "go").click()

    def cards():
        found = browser.find_elements(By.CSS_SELECTOR, "section.card")
        return found if len(found) == 2 else None

    good, bad = wait_for(cards, 90, "two result cards")
    assert good.find_element(By.TAG_NAME, "h2").text == "DSCN0010.jpg"
    wait_for(lambda: good.find_elements(By.CSS_SELECTOR, "svg.map path.land"), 30, "the map")
    assert len(good.find_elements(By.CSS_SELECTOR, "svg.map circle.cell")) >= 1
    assert good.find_element(By.CSS_SELECTOR, "p.country").text.removeprefix("Country: ") not in ("", "-")
    assert "GPSLatitude" in {td.text for td in good.find_elements(By.CSS_SELECTOR, "table.findings td.field")}
    # the file's own GPS position beside the guess: a diamond on the map and the line that says so
    lat = next(td for td in good.find_elements(By.CSS_SELECTOR, "table.findings tr") if "GPSLatitude" in td.text)
    assert len(good.find_elements(By.CSS_SELECTOR, "svg.map path.file-gps")) == 1
    note = good.find_element(By.CSS_SELECTOR, "p.file-gps-note").text
    assert note.startswith("Your file says you were here: ") and repr(float(lat.text.split()[-1])) in note
    assert not bad.find_elements(By.CSS_SELECTOR, "path.file-gps")
    assert "terrain renderings" in good.find_element(By.CSS_SELECTOR, "p.warning").text
    assert "failed" in bad.get_attribute("class") and "corrupt.jpg" in bad.find_element(By.CSS_SELECTOR, ".error").text
    wait_for(lambda: good.find_elements(By.CSS_SELECTOR, "img.overlay"), 60, "the attention overlay")
    shot = tmp_path / "serve-page.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("ROOST_UPDATE_SCREENSHOT"):
        shutil.copy(shot, REPO / "docs" / "serve-page.png")

    good.find_element(By.CSS_SELECTOR, "button.download").click()
    link = wait_for(lambda: good.find_elements(By.CSS_SELECTOR, "a.stripped"), 30, "the stripped copy's link")[0]
    assert link.get_attribute("download") == "stripped-DSCN0010.jpg"
    copy = base64.b64decode(
        browser.execute_async_script(
            """const [href, done] = arguments;
            fetch(href).then(r => r.blob()).then(b => { const f = new FileReader();
              f.onload = () => done(f.result.split(",")[1]); f.readAsDataURL(b); });""",
            link.get_attribute("href"),
        )
    )
    assert copy != photo.read_bytes() and audit_bytes(copy, "copy", Image.MAX_IMAGE_PIXELS)[1] == []
    with Image.open(photo) as a, Image.open(io.BytesIO(copy)) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
