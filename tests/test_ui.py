"""The Dagster UI in a real browser: the webserver on 127.0.0.1 against a temporary DAGSTER_HOME,
headless Chromium (Debian's chromium + chromium-driver, which `make test` installs), the asset
graph showing every asset, a materialization launched from the UI, a screenshot. Every wait is
bounded; the server is stopped by its process ids."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ml.serve.process import free_port
from tests.conftest import REPO, make_root
from tests.test_definitions import CHAIN


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(base + "/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())


def wait_for(predicate, timeout: float, what: str, step: float = 0.5):
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except StaleElementReferenceException:  # the page re-rendered while being read
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def webserver(tmp_path):
    root = make_root(tmp_path / "project")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ROOST_ROOT": str(root)}
    # `dagster dev`, as `make ui`: the webserver and the daemon that dequeues the UI's runs
    cmd = [
        "env",
        "--default-signal=INT,TERM",
        str(REPO / ".venv" / "bin" / "dagster"),
        "dev",
        "-m",
        "orchestration.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    log = open(tmp_path / "webserver.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(base + "/server_info", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(up, 180, "the webserver")
        yield base, root
    finally:
        # the server and its code-server child: the whole session, by its process ids
        pids = subprocess.run(["ps", "-o", "pid=", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in map(int, pids):
            with _quiet():
                os.kill(pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in map(int, pids):
                with _quiet():
                    os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        return kind is ProcessLookupError


def test_asset_graph_and_a_materialization_from_the_ui(webserver, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base, root = webserver
    assert graphql(base, "mutation { setNuxSeen }")["data"]["setNuxSeen"] is True  # the community pop-up

    from selenium.common.exceptions import StaleElementReferenceException

    def text():
        try:
            return browser.find_element(By.TAG_NAME, "body").text
        except StaleElementReferenceException:  # the page re-rendered under us: read it again
            return ""

    # the gate's whole upstream lineage (the chain's last asset): every asset of the chain, without group boxes
    browser.get(base + "/assets/champion?view=lineage&lineageScope=upstream&lineageDepth=20")
    shown = wait_for(lambda: all(a in text() for a in CHAIN) and text(), 60, "every asset in the graph")
    assert all(asset in shown for asset in CHAIN)
    shot = tmp_path / "ui-asset-graph.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("ROOST_UPDATE_SCREENSHOT"):
        shutil.copy(shot, REPO / "docs" / "ui-asset-graph.png")

    browser.get(base + "/assets/raw_locations")
    button = wait_for(
        lambda: next(
            (b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Materialize"), None
        ),
        60,
        "the Materialize button",
    )
    button.click()
    query = "{ runsOrError { ... on Runs { results { runId status assetSelection { path } } } } }"

    def finished():
        runs = graphql(base, query)["data"]["runsOrError"]["results"]
        done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        return done[0] if done else None

    run = wait_for(finished, 240, "the run launched from the UI", step=2)
    assert run["status"] == "SUCCESS" and run["assetSelection"] == [{"path": ["raw_locations"]}]
    assert (Path(root) / "data" / "raw_locations" / "raw_locations.duckdb").exists()
