"""Training at scale: a 2-process gloo run (torchrun) agrees across ranks and with one process
at the same global batch; a run killed by SIGKILL resumes to the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ml.paths import Paths
from ml.stages.geocell_model import run_geocell_model
from ml.stages.launch import launch
from ml.stages.streetclip import run_streetclip
from ml.store import list_tables, read_table, write_tables
from tests.conftest import REPO

INPUTS = {
    "streetclip": ["location_images", "captions", "reference"],
    "geocell_model": ["location_images", "enriched_locations", "geocells", "streetclip", "reference"],
}
SETTINGS = {
    "streetclip": {"epochs": 1, "batch_size": 16, "threads": 1, "val_locations": 8, "num_workers": 0},
    "geocell_model": {"epochs": 3, "batch_size": 16, "threads": 1, "patience": 10},
}


LOCATIONS = 100  # streetclip's of the smoke chain's 300: the mechanisms need steps, not data


def project(tmp: Path, smoke: Path, asset: str, **settings) -> Path:
    """A root whose inputs are the smoke chain's (linked; for streetclip the views and captions
    of its first ``LOCATIONS`` locations only) and whose outputs are its own. geocell_model keeps
    every location: its masked auxiliary losses are per-process means under DDP, which agree
    with one process's to 1e-3 on the full smoke set but not on a third of it."""
    root = tmp / f"{asset}-{len(list(tmp.iterdir())) if tmp.exists() else 0}"
    (root / "data").mkdir(parents=True)
    src, dst = Paths(smoke), Paths(root)
    keep = read_table(src.asset_db("enriched_locations"), "locations")["id"].astype(str).head(LOCATIONS)
    for name in INPUTS[asset]:
        if asset == "streetclip" and name in ("location_images", "captions"):
            tables = {t: read_table(src.asset_db(name), t) for t in list_tables(src.asset_db(name))}
            key = "images" if name == "location_images" else "captions"
            tables[key] = tables[key][tables[key]["location_id"].astype(str).isin(set(keep))]
            write_tables(dst.asset_db(name), tables)
            if name == "location_images":
                dst.shards.symlink_to(src.shards.resolve())
        else:
            (root / "data" / name).symlink_to((smoke / "data" / name).resolve())
    params = yaml.safe_load((smoke / "params.yaml").read_text())
    section = {**params[asset], **SETTINGS[asset], "device": "cpu", **settings}
    section["profiles"] = {}  # the smoke profile's epochs and batch size would win over these
    params[asset] = section
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def weights(root: Path, asset: str) -> dict[str, torch.Tensor]:
    folder = Paths(root).streetclip_model if asset == "streetclip" else Paths(root).geocell_model
    return load_file(folder / "model.safetensors")


def metrics(root: Path, asset: str) -> dict:
    return json.loads((Paths(root).asset_dir(asset) / "metrics.json").read_text())


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].numel())
    assert worst <= atol, f"largest weight difference {worst:g} > {atol:g}"


def test_two_processes_give_one_process_gradients(tmp_path):
    """Known answer: a global batch's gradients, split over two gloo processes (unequal shares for
    the classifier; gathered negatives for the contrastive loss), equal one process's."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "tests.ddp_grads", str(tmp_path / "one.pt")], cwd=REPO, env=env, check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "tests.ddp_grads",
            str(tmp_path / "two.pt"),
        ],
        cwd=REPO,
        env=env,
        check=True,
    )
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys() and len(one) == 9
    for k in one:
        assert float(one[k].abs().max()) > 1e-3  # a real gradient, not zeros
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("asset", ["geocell_model", "streetclip"])
def test_two_gloo_processes_agree_with_one(smoke_chain, tmp_path, asset):
    smoke, _ = smoke_chain
    one = project(tmp_path, smoke, asset, checkpoint_every=0)
    (run_streetclip if asset == "streetclip" else run_geocell_model)(Paths(one))
    two = project(tmp_path, smoke, asset, checkpoint_every=0, processes=2)
    launch(asset, two, 2, cuda=False)
    m = metrics(two, asset)
    assert m["processes"] == 2 and len(set(m["rank_weight_digests"])) == 1  # identical weights on both ranks
    assert metrics(one, asset)["processes"] == 1
    # Equal gradients (the test above) up to float summation order; Adam's normalisation turns
    # those 1e-8 differences into weight differences of ~1e-4 over a few epochs.
    assert_close(weights(one, asset), weights(two, asset), atol=1e-3)
    losses = "losses" if asset == "streetclip" else "history"
    a, b = metrics(one, asset)[losses], metrics(two, asset)[losses]
    a, b = (a, b) if asset == "streetclip" else (a["train_loss"], b["train_loss"])
    assert a == pytest.approx(b, rel=1e-3)


KILLABLE = {
    "streetclip": {"epochs": 2, "batch_size": 16, "threads": 2},
    "geocell_model": {"epochs": 5, "batch_size": 8},
}


@pytest.mark.parametrize("asset", ["geocell_model", "streetclip"])
def test_a_killed_run_resumes_to_the_same_weights(smoke_chain, tmp_path, asset):
    smoke, _ = smoke_chain
    whole = project(tmp_path, smoke, asset, checkpoint_every=0, **KILLABLE[asset])
    run = run_streetclip if asset == "streetclip" else run_geocell_model
    run(Paths(whole))

    broken = project(tmp_path, smoke, asset, checkpoint_every=1, **KILLABLE[asset])
    state = Paths(broken).cache_dir(asset) / "checkpoint" / "state.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "ml.stages.launch", asset, str(broken)], cwd=REPO, env=env)
    killed_at = None
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                step = json.loads(state.read_text())["global_step"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                step = 0
            if step >= 12:
                proc.send_signal(signal.SIGKILL)
                killed_at = step
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert killed_at is not None, "the run ended before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    assert not (Paths(broken).asset_dir(asset) / "metrics.json").exists()

    resumed = run(Paths(broken))
    assert resumed["resumed_at_step"] >= 12
    assert not state.parent.exists()  # a finished run clears its checkpoints
    assert_close(weights(whole, asset), weights(broken, asset), atol=1e-6)
