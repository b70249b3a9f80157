"""Training the geocell classifier (``ml.models.geocell``) on locations and their views.

A location's embedding is the mean of its first ``views`` views' embeddings (0 = all), at
training and evaluation alike; in training a location reads ``train_views`` of them, drawn
afresh each epoch from numbers seeded by (seed, epoch) for every train location, so resumed and
DDP runs draw what one process draws (``ViewTable.draw``; 0 = all); evaluation reads all. The
frozen trunk's outputs are computed once per view and kept in memory (``cache_trunk``; about
33 KB a view for ``tiny``, far more for ViT-L, where it is off), so an epoch runs only the
trainable top layers and the heads.

The epoch kept (``select``): ``best``, the best val GeoGuessr score (PIGEON's headline metric,
from the top cell's centroid), with early stopping after ``patience`` epochs without
improvement (top-1 over hundreds of cells moves by a few locations an epoch while the distances
it stands for swing by thousands of km); or ``last``, the end of the cosine schedule, every
epoch run, when val is too small to tell the later epochs apart and choosing among them would
chase its noise.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ml.data.images import ImageStore, ViewTable, view_table
from ml.geo.haversine import haversine_km
from ml.geo.scores import distance_summary
from ml.models.backbone import BackboneSpec, load_backbone, location_embedding, preprocess
from ml.models.geocell import (
    GeocellModel,
    GeocellModelSpec,
    masked_cross_entropy,
    masked_mse,
    smooth_targets,
    soft_cross_entropy,
)
from ml.settings import GeocellModelConfig
from ml.train.common import autocast
from ml.train.distributed import Dist, DistributedBatchSampler, fingerprint
from ml.train.loop import Fitted, Schedule, Task, fit, start

log = logging.getLogger(__name__)


@dataclass
class Targets:
    """Per-location training targets, aligned with a location list."""

    cell: np.ndarray
    koppen: np.ndarray
    landcover: np.ndarray
    elevation: np.ndarray
    population: np.ndarray
    month: np.ndarray


def build_targets(locations: pd.DataFrame, cell: np.ndarray, stats: dict) -> Targets:
    def ints(column: str, offset: int) -> np.ndarray:
        v = pd.to_numeric(locations[column], errors="coerce").to_numpy(np.float64)
        return np.where(np.isfinite(v), v - offset, -1).astype(np.int64)

    elevation = (locations["elevation_m"].to_numpy(np.float64) - stats["elevation_mean"]) / stats["elevation_std"]
    population = np.log1p(locations["population_density"].to_numpy(np.float64))
    population = (population - stats["population_mean"]) / stats["population_std"]
    return Targets(
        cell=cell.astype(np.int64),
        koppen=ints("koppen_id", 1),
        landcover=ints("landcover", 0),
        elevation=elevation,
        population=population,
        month=ints("month", 1),
    )


def regression_stats(train: pd.DataFrame) -> dict[str, float]:
    pop = np.log1p(train["population_density"].to_numpy(np.float64))
    elev = train["elevation_m"].to_numpy(np.float64)
    return {
        "elevation_mean": float(elev.mean()),
        "elevation_std": float(elev.std() or 1.0),
        "population_mean": float(pop.mean()),
        "population_std": float(pop.std() or 1.0),
    }


class TopAndHeads(torch.nn.Module):
    """The trainable part (the top transformer layers and the heads), the module DDP wraps:
    frozen trunk outputs (B*V, ...) and the view mask (B, V) -> the heads' outputs."""

    def __init__(self, model: GeocellModel):
        super().__init__()
        self.model = model

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        b, v = mask.shape
        emb = self.model.top(hidden).float().view(b, v, -1)
        return self.model.heads(location_embedding(emb, mask))


def all_sum(value: float, d: Dist) -> float:
    if not d.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return float(t.item())


@dataclass
class Split:
    """One split's locations, their targets and their views."""

    frame: pd.DataFrame
    targets: Targets
    views: ViewTable


@dataclass
class GeocellTrainResult:
    model: GeocellModel
    history: dict[str, list[float]]
    metrics: dict
    seconds: float
    train: pd.DataFrame  # the locations trained on
    val: pd.DataFrame  # the locations selected on
    val_rows: pd.DataFrame | None = None  # the selected model on each val location (``GeocellTask.evaluate``)


class ViewEncoder:
    """Trunk outputs for image rows of ``keys`` (the frozen trunk runs once per view and its
    outputs are kept in memory when ``cache``)."""

    def __init__(self, model: GeocellModel, store: ImageStore, keys, backbone: BackboneSpec, device, cache: bool):
        self.model, self.store, self.keys, self.backbone = model, store, keys, backbone
        self.device, self.cache, self.kept = device, cache, {}

    def __call__(self, view_rows: np.ndarray) -> torch.Tensor:
        todo = [r for r in dict.fromkeys(view_rows.tolist()) if r not in self.kept]
        out = {}
        for i in range(0, len(todo), 256):
            chunk = todo[i : i + 256]
            pixels = preprocess([self.store.read(self.keys[r]) for r in chunk], self.backbone).to(self.device)
            with torch.no_grad(), autocast(self.device):
                h = self.model.trunk(pixels).float()
            for r, hr in zip(chunk, h):
                out[r] = hr.cpu() if self.cache else hr
        if self.cache:
            self.kept.update(out)
            out = self.kept
        return torch.stack([out[r] for r in view_rows.tolist()]).to(self.device)


class GeocellTask(Task):
    """PIGEON's geocell objective for ``ml.train.loop``: haversine-smoothed cell labels plus the
    weighted auxiliary heads; each epoch ends with val metrics and selection on GeoGuessr score."""

    name = "geocell_model"

    def __init__(self, model, encoder, train: Split, val: Split, soft, cells: pd.DataFrame, aux, cfg, d, device):
        self.model, self.module, self.encode = model, TopAndHeads(model), encoder
        self.train, self.val, self.soft, self.aux, self.cfg, self.d, self.device = train, val, soft, aux, cfg, d, device
        ordered = cells.sort_values("cell_id")
        self.centroids = ordered[["centroid_lat", "centroid_lon"]].to_numpy(np.float64)
        self.cell_country = ordered["country"].astype(str).to_numpy() if "country" in ordered else None
        self.sampler = DistributedBatchSampler(len(train.frame), cfg.batch_size, d, cfg.seed, drop_last=False)
        self.history: dict[str, list[float]] = {"train_loss": [], "val_top1": [], "val_top5": [], "val_geoguessr": []}
        self.best, self.best_state, self.stale, self.total = -1.0, None, 0, 0.0
        self.kept_metrics: dict = {}  # val figures of the model kept (select best: the best epoch; last: the latest)
        self.rows = self.kept_rows = None  # per location of the last evaluation / of the kept model

    def forward(self, views: ViewTable, locations, module=None) -> dict[str, torch.Tensor]:
        flat, mask = views.flat_rows(locations)
        with autocast(self.device):
            return (module or self.module)(self.encode(flat), torch.from_numpy(mask).to(self.device))

    def micro_steps(self) -> int:
        return self.sampler.steps()

    def plan(self, epoch: int, first: int) -> list:
        return list(self.sampler(epoch, first))

    def batches(self, epoch: int, plan: list):
        """Each micro-batch's views: ``train_views`` of each location's own, drawn afresh each
        epoch from numbers seeded by (seed, epoch) for every train location, so that a resumed
        run and any number of processes draw what one uninterrupted process draws."""
        views = self.train.views
        noise = np.random.default_rng([self.cfg.seed, epoch]).random(views.index.shape)
        for _, rows, _ in plan:
            rows = np.asarray(rows)
            yield views.draw(rows, self.cfg.train_views, noise[rows])

    def start_epoch(self, epoch: int, first: int) -> None:
        if first == 0:
            self.total = 0.0

    def loss(self, ddp, views: ViewTable, rows, global_n: int) -> tuple[torch.Tensor, float]:
        """The batch's mean loss, scaled by this process's share of the global batch x W so that
        DDP's averaged gradients are the global batch's; ``views``: the batch's (``batches``)."""
        d, t = self.d, self.train.targets
        out = self.forward(views, slice(None), ddp)
        loss = soft_cross_entropy(out["cells"], self.soft[rows].to(self.device)) * (len(rows) * d.world / global_n)
        weights = asdict(self.cfg.aux)  # heads left out are not in aux
        for name in self.aux:
            target = torch.from_numpy(getattr(t, name)[rows]).to(self.device)
            regression = name in ("elevation", "population")
            known = torch.isfinite(target) if regression else target >= 0
            # the global batch's known rows (x W: DDP averages the W processes' gradients)
            count = all_sum(float(known.sum()), d) / d.world if d.active else None
            if regression:
                loss = loss + weights[name] * masked_mse(out[name], target.float(), count)
            else:
                loss = loss + weights[name] * masked_cross_entropy(out[name], target, count)
        return loss, loss.item() * global_n / d.world  # summed over processes at the epoch's end

    def stepped(self, loss: float) -> None:
        self.total += loss

    @torch.no_grad()
    def evaluate(self, split: Split) -> dict[str, float]:
        """Val metrics of the top cell's centroid (% within each radius, median km, score), its
        country, cell top-1 / top-5 and each auxiliary head's accuracy or error; ``rows``: the
        same per location (distance_km, cell_top1, cell_top5, country_correct), for intervals."""
        self.model.eval()
        t, frame = split.targets, split.frame
        logits, aux_out = [], {n: [] for n in self.aux}
        for i in range(0, len(frame), 256):
            out = self.forward(split.views, slice(i, i + 256))
            logits.append(out["cells"].cpu())
            for n in self.aux:
                aux_out[n].append(out[n].cpu())
        if not logits:
            return {}
        top5 = torch.cat(logits).topk(min(5, logits[0].shape[1]), dim=1).indices.numpy()
        guess = top5[:, 0]
        d = haversine_km(frame["lat"], frame["lon"], self.centroids[guess, 0], self.centroids[guess, 1])
        rows = {"distance_km": np.asarray(d, np.float64), "cell_top1": guess == t.cell}
        rows["cell_top5"] = (top5 == t.cell[:, None]).any(1)
        metrics = {"top1": float(np.mean(rows["cell_top1"])), "top5": float(np.mean(rows["cell_top5"]))}
        metrics |= distance_summary(d)
        if self.cell_country is not None and "adm0_a3" in frame:  # % like the report's
            rows["country_correct"] = self.cell_country[guess] == frame["adm0_a3"].astype(str).to_numpy()
            metrics["country_accuracy"] = float(np.mean(rows["country_correct"]) * 100)
        self.rows = pd.DataFrame(rows)
        stats = self.model.spec.stats
        for n in self.aux:
            pred, target = torch.cat(aux_out[n]).numpy(), getattr(t, n)
            regression = n in ("elevation", "population")
            known = np.isfinite(target) if regression else target >= 0
            if not known.any():
                continue  # e.g. no capture month known: no metric rather than a made-up 0
            if regression:
                metrics[f"{n}_mae"] = float(np.mean(np.abs(pred[known] - target[known])) * stats[f"{n}_std"])
            else:
                metrics[f"{n}_accuracy"] = float(np.mean(pred[known].argmax(1) == target[known]))
        return metrics

    def end_epoch(self, epoch: int) -> bool:
        metrics, h = self.evaluate(self.val), self.history
        h["train_loss"].append(all_sum(self.total, self.d) / max(1, len(self.train.frame)))
        for name, key in (("val_top1", "top1"), ("val_top5", "top5"), ("val_geoguessr", "geoguessr")):
            h[name].append(metrics.get(key, 0.0))
        log.info("epoch %d: loss %.4f val %s", epoch + 1, h["train_loss"][-1], metrics)
        if self.cfg.select == "last":  # the model keeps its weights; val figures are the latest
            self.kept_metrics, self.kept_rows = metrics, self.rows
            return False
        if metrics.get("geoguessr", 0.0) > self.best:
            self.best, self.stale = metrics.get("geoguessr", 0.0), 0
            self.kept_metrics, self.kept_rows = metrics, self.rows
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.stale += 1
        return self.stale >= self.cfg.patience

    def state(self) -> dict:
        keep = ("history", "best", "kept_metrics", "kept_rows", "stale", "best_state", "total")
        return {k: getattr(self, k) for k in keep}

    def restore(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def select(locations: pd.DataFrame, images: pd.DataFrame, train_cell: dict[str, int]):
    """The train locations that have views and a cell, and the val locations that have views."""
    has_views = locations["id"].astype(str).isin(set(images["location_id"].astype(str)))
    train = locations[(locations["split"] == "train") & has_views].reset_index(drop=True)
    val = locations[(locations["split"] == "val") & has_views].reset_index(drop=True)
    return train[train["id"].astype(str).isin(train_cell.keys())].reset_index(drop=True), val


def heads_to_train(cfg: GeocellModelConfig, train: pd.DataFrame) -> list[str]:
    """The auxiliary heads with a weight, less those no training location has a target for
    (such a head would only learn noise)."""
    aux = [name for name, w in asdict(cfg.aux).items() if w > 0]
    unknown = {"month": train["month"].isna().all(), "koppen": train["koppen_id"].isna().all()}
    dropped = [name for name in aux if unknown.get(name, False)]
    if dropped:
        log.warning("no training location has a known %s: the head is left out", ", ".join(dropped))
    return [name for name in aux if name not in dropped]


def train_geocell_model(
    locations: pd.DataFrame,
    images: pd.DataFrame,
    store_folder: Path,
    cells: pd.DataFrame,
    train_cell: dict[str, int],
    lookup,
    streetclip_folder: Path,
    cfg: GeocellModelConfig,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
) -> GeocellTrainResult:
    """Train on the train split, select on val. ``train_cell`` maps train ids to their cells;
    ``lookup(lat, lon)`` gives any location's cell. Distributed under torchrun (each process
    evaluates val in full, so every process takes the same early-stopping decisions), resumable
    from ``checkpoint_dir`` (``ml.train.loop``)."""
    d, device = start(cfg.seed, cfg.threads, cfg.device)
    clip, _, backbone = load_backbone(streetclip_folder)
    train, val = select(locations, images, train_cell)
    stats = regression_stats(train)
    spec = GeocellModelSpec(
        vision_config=clip.config.vision_config.to_dict(),
        projection_dim=clip.config.projection_dim,
        n_cells=len(cells),
        head=cfg.head,
        head_hidden=cfg.head_hidden,
        trainable_layers=cfg.trainable_layers,
        aux=heads_to_train(cfg, train),
        backbone=asdict(backbone),
        stats=stats,
        views=cfg.views,
    )
    model = GeocellModel.from_clip(clip, spec).to(device)
    model.freeze_trunk()
    del clip
    ordered = cells.sort_values("cell_id")
    centroids = ordered[["centroid_lat", "centroid_lon"]].to_numpy(np.float64)
    t_train = build_targets(train, np.array([train_cell[str(i)] for i in train["id"]]), stats)
    t_val = build_targets(val, lookup(val["lat"].to_numpy(), val["lon"].to_numpy()), stats)
    if cfg.labels == "haversine":
        soft = smooth_targets(t_train.cell, train["lat"].to_numpy(), train["lon"].to_numpy(), centroids, cfg.tau_km)
    else:
        soft = np.eye(len(cells))[t_train.cell]
    store = ImageStore(store_folder)
    tr_views, va_views = view_table(train["id"], images, cfg.views), view_table(val["id"], images, cfg.views)
    encoder = ViewEncoder(model, store, tr_views.keys, backbone, device, cfg.cache_trunk)  # both index these rows
    soft = torch.tensor(soft, dtype=torch.float32)
    splits = Split(train, t_train, tr_views), Split(val, t_val, va_views)
    task = GeocellTask(model, encoder, *splits, soft, cells, spec.aux, cfg, d, device)
    untrained = task.kept_metrics = task.evaluate(task.val)
    counts = np.bincount(t_train.cell, minlength=len(cells))
    most_frequent = float(np.mean(t_val.cell == counts.argmax())) if len(val) else 0.0

    schedule = Schedule(cfg.epochs, cfg.lr, cfg.weight_decay, cfg.warmup_fraction, cfg.checkpoint_every)
    key = fingerprint(asdict(cfg), d.world, train["id"].astype(str).tolist(), t_train.cell.tolist(), len(cells))
    params = [p for p in model.parameters() if p.requires_grad]
    fitted: Fitted = fit(task, params, schedule, d, device, key, checkpoint_dir, progress)
    store.close()
    if task.best_state is not None:
        model.load_state_dict(task.best_state)
    digests = fitted.finish(model)
    model.to("cpu").eval()
    metrics = {"val": task.kept_metrics, "val_untrained": untrained, "val_most_frequent_cell_top1": most_frequent}
    metrics |= {"epochs_run": len(task.history["train_loss"]), "train_locations": len(train), "val_locations": len(val)}
    metrics |= {"cells": len(cells), "aux_heads": spec.aux, "processes": d.world, "rank_weight_digests": digests}
    metrics["resumed_at_step"] = fitted.resumed_at_step
    return GeocellTrainResult(model, task.history, metrics, fitted.seconds, train, val, task.kept_rows)
