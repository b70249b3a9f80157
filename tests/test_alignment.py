"""Joins by id, never by position: every consumer of the view store sees each location's own
views, in view order, even when location ids sort differently as strings and as numbers.

The store below holds locations ``mp16-7`` ... ``mp16-101`` (string order puts ``mp16-10``
before ``mp16-7``) in numeric order, as ``location_images`` writes them; every view's pixels
encode its own location (red = 20 x its position in ``IDS``) and view (green = 60 x view).
Before the fix, ``view_table`` took positions in a string-sorted frame as rows of the unsorted
one, and each of these tests failed: training batches, prototypes and the report's evaluation
read other locations' views.
"""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ml.data.images import ImageStore, ShardWriter, encode, view_table
from ml.settings import AuxWeights, GeocellModelConfig
from tests.conftest import REPO

IDS = [f"mp16-{n}" for n in (7, 8, 9, 10, 11, 12, 98, 99, 100, 101)]
VIEWS = 4


def decode(img: np.ndarray) -> tuple[int, int]:
    """(position in IDS, view) from a view's pixels."""
    return int(round(img[0, 0, 0] / 20)), int(round(img[0, 0, 1] / 60))


@pytest.fixture(scope="module", params=["numeric", "shuffled"])
def store(request, tmp_path_factory):
    """The shards and the images table; ``shuffled``: the table's rows in a random order."""
    folder = tmp_path_factory.mktemp("store")
    rows = []
    with ShardWriter(folder, shard_views=7) as writer:  # several shards
        for k, lid in enumerate(IDS):
            for v in range(VIEWS):
                img = np.zeros((64, 64, 3), np.uint8)
                img[..., 0], img[..., 1] = 20 * k, 60 * v
                rows.append({"location_id": lid, "view": v, "key": writer.add(encode(img, "png"))})
    images = pd.DataFrame(rows)
    if request.param == "shuffled":
        images = images.sample(frac=1.0, random_state=3).reset_index(drop=True)
    return folder, images


def test_view_table_joins_by_id(store):
    folder, images = store
    asked = [IDS[3], IDS[0], "mp16-5000", IDS[9], IDS[6]]  # any order, one without views
    table = view_table(asked, images, 0)
    s = ImageStore(folder)
    for k, lid in enumerate(asked):
        got = [decode(img) for img in table.read(s, k)]
        expected = [(IDS.index(lid), v) for v in range(VIEWS)] if lid in IDS else []
        assert got == expected, lid
    first_two = view_table(asked, images, 2)
    assert [decode(img) for img in first_two.read(s, 1)] == [(0, 0), (0, 1)]
    assert not table.mask[2].any()


def locations() -> pd.DataFrame:
    """Train, val and test locations; elevation encodes the location (100 m x position)."""
    k = np.arange(len(IDS))
    return pd.DataFrame(
        {
            "id": IDS,
            "lat": 10.0 + k,
            "lon": 20.0 + k,
            "split": ["train"] * 6 + ["val"] * 2 + ["test"] * 2,
            "elevation_m": 100.0 * k,
            "population_density": 1.0 + k,
            "koppen_id": 1,
            "landcover": 0,
            "month": np.nan,
        }
    )


def tiny_clip(folder):
    """A randomly initialised tiny CLIP saved in ``folder``, as streetclip saves one."""
    from ml.models.backbone import BackboneSpec, build_model, build_tokenizer, save_backbone

    spec = BackboneSpec.named("tiny")
    save_backbone(build_model(spec, "random"), build_tokenizer(spec, REPO / "data" / "reference"), spec, folder)
    return folder


def train_on_store(store, clip, **settings):
    """``train_geocell_model`` on the store's locations (train: the first six, cells by latitude),
    with small settings and ``settings`` over them."""
    import ml.train.geocell as tg

    folder, images = store
    frame = locations()
    train = frame[frame["split"] == "train"]
    cells = pd.DataFrame({"cell_id": [0, 1], "centroid_lat": [12.0, 16.0], "centroid_lon": [22.0, 26.0]})
    train_cell = {lid: int(i >= 3) for i, lid in enumerate(train["id"])}
    base = dict(
        views=0,
        train_views=0,
        trainable_layers=1,
        head="linear",
        head_hidden=8,
        labels="haversine",
        tau_km=75.0,
        aux=AuxWeights(koppen=0.0, landcover=0.0, elevation=1.0, population=0.0, month=0.0),
        epochs=2,
        batch_size=4,
        lr=1e-3,
        weight_decay=0.0,
        warmup_fraction=0.0,
        patience=5,
        select="best",
        seed=0,
        device="cpu",
        threads=1,
        cache_trunk=False,
        processes=1,
        checkpoint_every=0,
    )
    cfg = GeocellModelConfig(**(base | settings))
    lookup = lambda lat, lon: (np.asarray(lat) > 14).astype(np.int64)  # noqa: E731
    return tg.train_geocell_model(frame, images, folder, cells, train_cell, lookup, clip, cfg, progress=False)


def test_a_draw_keeps_each_locations_own_views_in_view_order(store):
    """``ViewTable.draw`` (training batches under ``train_views``): k of each location's own
    views, distinct, in view order, the ones its numbers rank lowest; fewer where a location
    has fewer; k 0 or at least the width: every view."""
    folder, images = store
    asked = [IDS[5], "mp16-5000", IDS[2], IDS[9]]  # one without views
    table, s = view_table(asked, images, 0), ImageStore(folder)
    rows = np.array([3, 1, 0, 2])
    noise = np.array([[0.9, 0.1, 0.5, 0.3], [0.1, 0.2, 0.3, 0.4], [0.2, 0.8, 0.7, 0.1], [0.6, 0.4, 0.05, 0.9]])
    drawn = table.draw(rows, 2, noise)
    assert drawn.index.shape == (4, 2)
    assert not drawn.mask[1].any()  # mp16-5000 has none
    expected = {0: [1, 3], 2: [0, 3], 3: [1, 2]}  # the two lowest numbers of each row, in view order
    for k, r in enumerate(rows):
        if r == 1:
            continue
        got = [decode(img) for img in drawn.read(s, k)]
        assert got == [(IDS.index(asked[r]), v) for v in expected[k]], (asked[r], got)
    for k in (0, VIEWS, VIEWS + 1):
        whole = table.draw(rows, k, noise)
        assert (whole.index == table.index[rows]).all() and (whole.mask == table.mask[rows]).all()


@pytest.mark.parametrize("train_views", [0, 2])
def test_training_batches_see_their_own_views(store, tmp_path, monkeypatch, train_views):
    """Every training batch's views (decoded from the pixels the trunk reads) belong to the
    locations whose targets the loss compares them with (elevation encodes the location), in
    view order: all of them, or ``train_views`` of them drawn per batch."""
    import ml.train.geocell as tg

    clip = tiny_clip(tmp_path / "clip")
    reads: list[list[tuple[int, int]]] = []
    targets: list[np.ndarray] = []
    real_preprocess, real_mse = tg.preprocess, tg.masked_mse

    def spy_preprocess(imgs, backbone):
        reads.append([decode(img) for img in imgs])
        return real_preprocess(imgs, backbone)

    def spy_mse(pred, target, *args):
        targets.append((target.detach().numpy().copy(), len(reads)))
        return real_mse(pred, target, *args)

    monkeypatch.setattr(tg, "preprocess", spy_preprocess)
    monkeypatch.setattr(tg, "masked_mse", spy_mse)
    train_on_store(store, clip, train_views=train_views)

    train = locations().query("split == 'train'")
    elev = train["elevation_m"].to_numpy()
    assert len(targets) == 4  # 2 epochs x 2 batches (6 locations, batches of 4)
    seen, drawn = [], set()
    width = train_views or VIEWS
    for target, n_reads in targets:
        batch = np.array(reads[n_reads - 1]).reshape(len(target), width, 2)
        owners = np.rint((target * (elev.std() or 1.0) + elev.mean()) / 100.0).astype(int)
        assert (batch[:, :, 0] == owners[:, None]).all(), (batch[:, :, 0], owners)
        views = batch[:, :, 1]
        if train_views:
            assert (np.diff(views, axis=1) > 0).all() and ((views >= 0) & (views < VIEWS)).all()
            drawn.update(tuple(v) for v in views.tolist())
        else:
            assert (views == np.arange(VIEWS)).all()
        seen.extend(owners.tolist())
    assert sorted(seen) == sorted(list(range(6)) * 2)
    if train_views:
        assert len(drawn) > 1  # drawn afresh, not one fixed pair


def test_select_last_runs_every_epoch_and_keeps_the_last(store, tmp_path, monkeypatch):
    """``select: last`` trains every epoch (patience 1 stops nothing) and keeps the last epoch's
    weights and val figures; ``select: best`` with the same patience stops early."""
    import ml.train.geocell as tg

    ends: list[dict] = []
    real_end = tg.GeocellTask.end_epoch

    def spy_end(task, epoch):
        stop = real_end(task, epoch)
        ends.append({k: v.detach().clone() for k, v in task.model.state_dict().items()})
        return stop

    monkeypatch.setattr(tg.GeocellTask, "end_epoch", spy_end)
    # a lr this small moves no val distance: the first epoch stays best and patience 1 stops the second
    clip = tiny_clip(tmp_path / "clip")
    best = train_on_store(store, clip, epochs=4, patience=1, lr=1e-9, select="best")
    assert best.metrics["epochs_run"] == 2
    ends.clear()
    last = train_on_store(store, clip, epochs=4, patience=1, select="last")  # lr 1e-3: the weights move
    assert last.metrics["epochs_run"] == 4 and len(ends) == 4
    kept = last.model.state_dict()
    assert all(torch.equal(v, ends[3][k]) for k, v in kept.items())
    assert not torch.equal(kept["cell_head.weight"], ends[2]["cell_head.weight"])  # the last, not an earlier one
    assert last.metrics["val"]["geoguessr"] == last.history["val_geoguessr"][3]


class FakeModel(torch.nn.Module):
    """embed_views -> (position in IDS, view) decoded from the normalised pixels."""

    def __init__(self):
        from ml.models.backbone import BackboneSpec

        super().__init__()
        self.backbone = BackboneSpec.named("tiny")
        self.spec = SimpleNamespace(views=0, backbone=asdict(self.backbone), projection_dim=2)

    def embed_views(self, pixels: torch.Tensor) -> torch.Tensor:
        mean, std = self.backbone.image_mean, self.backbone.image_std
        red = (pixels[:, 0, 0, 0] * std[0] + mean[0]) * 255 / 20
        green = (pixels[:, 1, 0, 0] * std[1] + mean[1]) * 255 / 60
        return torch.stack([red, green], dim=1)


def test_prototype_embeddings_are_their_locations_own(store):
    from ml.refine.prototypes import location_embeddings

    folder, images = store
    ids = [IDS[9], IDS[2], IDS[4], IDS[0]]
    emb = location_embeddings(FakeModel(), images, ids, ImageStore(folder), batch_size=3)
    np.testing.assert_allclose(emb[:, 0], [9, 2, 4, 0], atol=0.05)
    np.testing.assert_allclose(emb[:, 1], (VIEWS - 1) / 2, atol=0.05)  # all views averaged


def test_the_reports_evaluation_reads_each_test_locations_own_views(store, monkeypatch):
    import ml.eval.evaluate as ev

    folder, images = store
    seen = {}

    def spy(geo, name, frame, groups, *args, **kwargs):
        seen["ids"] = frame["id"].tolist()
        seen["groups"] = [[decode(img) for img in group] for group in groups]

    monkeypatch.setattr(ev, "evaluate_groups", spy)
    frame = locations()
    geo = SimpleNamespace(model=SimpleNamespace(spec=SimpleNamespace(views=0)))
    cfg = SimpleNamespace(max_locations=0)
    ev.evaluate_holdout(geo, frame, images, ImageStore(folder), frame[frame["split"] == "train"], None, cfg)
    assert seen["ids"] == IDS[8:]
    assert seen["groups"] == [[(IDS.index(i), v) for v in range(VIEWS)] for i in seen["ids"]]
