"""geocell_model: label smoothing, losses, frozen layers, and training on the smoke chain."""

import numpy as np
import pytest
import torch

from ml.geo.haversine import haversine_km
from ml.models.backbone import BackboneSpec, build_model
from ml.models.geocell import (
    GeocellModel,
    GeocellModelSpec,
    load_geocell_model,
    masked_cross_entropy,
    masked_mse,
    smooth_labels,
    soft_cross_entropy,
)
from ml.paths import Paths

PARIS, LONDON, BERLIN = (48.8566, 2.3522), (51.5074, -0.1278), (52.52, 13.405)


def test_smooth_labels_by_hand():
    centroids = np.array([PARIS, LONDON, BERLIN])
    x = np.array([49.0]), np.array([2.5])  # near Paris, true cell Paris
    y = smooth_labels(np.array([0]), *x, centroids, tau_km=75.0)
    d = haversine_km(49.0, 2.5, centroids[:, 0], centroids[:, 1])
    assert y[0, 0] == pytest.approx(1.0)
    assert y[0, 1] == pytest.approx(np.exp(-(d[1] - d[0]) / 75.0))
    assert y[0, 2] == pytest.approx(np.exp(-(d[2] - d[0]) / 75.0))
    # Paris-London is about 343.5 km: London's weight for a point at Paris is exp(-343.5 / 75)
    y = smooth_labels(np.array([0]), np.array([PARIS[0]]), np.array([PARIS[1]]), centroids, 75.0)
    assert y[0, 1] == pytest.approx(np.exp(-343.5 / 75.0), rel=0.01)
    # A true cell farther than another centroid: that other centroid weighs more than 1.
    y = smooth_labels(np.array([2]), np.array([PARIS[0]]), np.array([PARIS[1]]), centroids, 75.0)
    assert y[0, 2] == pytest.approx(1.0) and y[0, 0] > 1.0


def test_one_hot_targets_reduce_to_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(5, 7)
    target = torch.tensor([0, 3, 6, 2, 2])
    one_hot = torch.nn.functional.one_hot(target, 7).float()
    assert torch.allclose(soft_cross_entropy(logits, one_hot), torch.nn.functional.cross_entropy(logits, target))


def test_masked_month_loss_ignores_unknown_months():
    logits = torch.randn(4, 12)
    target = torch.tensor([3, -1, 7, -1])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], target[[0, 2]])
    assert torch.allclose(masked_cross_entropy(logits, target), expected)
    changed = logits.clone()
    changed[[1, 3]] += 100.0  # rows with unknown months do not matter
    assert torch.allclose(masked_cross_entropy(changed, target), expected)


def test_masked_losses_average_to_the_global_batch_mean_over_processes():
    """Under DDP each process divides its known rows' sum by the global batch's known count / W:
    the W processes' average is the global masked mean, however the known rows are shared out
    (here 3 known of 4 on one process, 1 of 4 on the other)."""
    torch.manual_seed(0)
    logits, pred = torch.randn(8, 12), torch.randn(8)
    classes = torch.tensor([3, 5, 1, -1, -1, -1, 7, -1])  # 4 known
    values = torch.tensor([1.0, 2.0, float("nan"), 4.0, float("nan"), float("nan"), 0.5, float("nan")])  # 4 known
    for loss, x, target in ((masked_cross_entropy, logits, classes), (masked_mse, pred, values)):
        per_process = [loss(x[:4], target[:4], 4 / 2), loss(x[4:], target[4:], 4 / 2)]
        assert torch.allclose(sum(per_process) / 2, loss(x, target))


def test_only_the_last_layers_train():
    clip = build_model(BackboneSpec.named("tiny"))
    spec = GeocellModelSpec(
        clip.config.vision_config.to_dict(), clip.config.projection_dim, 5, "linear", 8, 1, ["koppen"], {}, {}, 0
    )
    model = GeocellModel.from_clip(clip, spec)
    model.freeze_trunk()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    pixels = torch.randn(4, 3, 64, 64)
    out = model.heads(model.embed_views(pixels))
    (out["cells"].sum() + out["koppen"].sum()).backward()
    opt.step()
    after = model.state_dict()
    last = f"vision.encoder.layers.{len(model.vision.encoder.layers) - 1}."
    for name, value in before.items():
        moved = not torch.equal(value, after[name])
        trainable = name.startswith((last, "vision.post_layernorm", "projection", "cell_head", "aux_heads"))
        assert moved == trainable, name
    assert torch.allclose(model.embed_views(pixels[:1]), model.top(model.trunk(pixels[:1])))


def test_all_layers_train_with_the_embeddings():
    """trainable_layers = the tower's depth (a randomly initialised backbone): nothing is frozen,
    the patch and position embeddings train too, and the cached "trunk" is the pixels."""
    clip = build_model(BackboneSpec.named("tiny"))
    depth = clip.config.vision_config.num_hidden_layers
    spec = GeocellModelSpec(
        clip.config.vision_config.to_dict(), clip.config.projection_dim, 5, "linear", 8, depth, [], {}, {}, 0
    )
    model = GeocellModel.from_clip(clip, spec)
    model.freeze_trunk()
    assert all(p.requires_grad for p in model.parameters())
    pixels = torch.randn(2, 3, 64, 64)
    assert model.trunk(pixels) is pixels
    expected = clip.get_image_features(pixel_values=pixels)
    expected = getattr(expected, "pooler_output", expected)  # transformers 5 returns an output object
    assert torch.allclose(model.embed_views(pixels), expected, atol=1e-5)


def test_geocell_model_smoke(smoke_chain):
    """The smoke model fits its training locations (a mechanism, not a quality claim): the best
    epoch's training loss is below 0.8 x the first's. Measured over training seeds 0/1/2 and 1
    vs 2 threads: 0.663-0.689 (the views' alignment has tests of its own: test_alignment)."""
    import json

    root, result = smoke_chain
    meta = result.asset_materializations_for_node("geocell_model")[0].metadata
    history = json.loads((Paths(root).asset_dir("geocell_model") / "metrics.json").read_text())["history"]
    assert len(history["train_loss"]) == meta["epochs_run"].value >= 2
    assert min(history["train_loss"]) < 0.8 * history["train_loss"][0]
    assert set(meta["val"].value) >= {"top1", "top5", "median_km"}
    intervals = meta["val_intervals"].value  # the report's metric names, over val's blocks
    assert set(intervals) >= {"median_km", "geoguessr", "within_2500km", "country_accuracy", "cell_top1"}
    assert all(i["low"] <= i["high"] for i in intervals.values())
    model = load_geocell_model(Paths(root).geocell_model)
    assert model.spec.n_cells == meta["cells"].value
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_smooth_targets_normalise_stably_far_from_the_centroid():
    from ml.models.geocell import smooth_targets

    centroids = np.array([PARIS, LONDON, (-33.87, 151.21)])
    lat, lon = np.array([60.0, 49.0]), np.array([100.0, 2.5])  # Siberia, "true" cell Sydney: 10,000 km off
    p = smooth_targets(np.array([2, 0]), lat, lon, centroids, 75.0)
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1.0)
    raw = smooth_labels(np.array([0]), lat[1:], lon[1:], centroids, 75.0)
    assert np.allclose(p[1], raw[0] / raw[0].sum())


def test_val_intervals_resample_the_splits_blocks(tmp_path):
    """Known answers: val locations in one block of the split's block_km give zero-width
    intervals at the values; in two blocks far apart, the median's interval runs from one
    block's median to the other's (a resample draws one block twice or each once)."""
    import shutil
    from pathlib import Path

    import pandas as pd

    from ml.stages.geocell_model import val_intervals

    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", tmp_path / "params.yaml")
    paths = Paths(tmp_path)
    near = pd.DataFrame({"lat": [48.0, 48.01, 48.02, 48.03], "lon": [1.0, 1.01, 1.02, 1.03]})
    rows = pd.DataFrame({"distance_km": [100.0, 200.0, 300.0, 400.0], "country_correct": [True, True, False, True]})
    found = val_intervals(paths, near, rows)
    assert found["val_blocks"] == 1
    assert found["val_intervals"]["median_km"] == {"low": 250.0, "high": 250.0}
    assert found["val_intervals"]["country_accuracy"] == {"low": 75.0, "high": 75.0}
    apart = pd.DataFrame({"lat": [48.0, 48.01, -33.0, -33.01], "lon": [1.0, 1.01, 151.0, 151.01]})
    spread = pd.DataFrame({"distance_km": [10.0, 30.0, 5000.0, 7000.0]})
    found = val_intervals(paths, apart, spread)
    assert found["val_blocks"] == 2
    assert found["val_intervals"]["median_km"] == {"low": 20.0, "high": 6000.0}
