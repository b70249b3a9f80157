"""Training the geocell classifier (``ml.models.geocell``) on locations and their views.

A location's embedding is the mean of its first ``views`` views' embeddings (0 = all), at
training and evaluation alike. The frozen trunk's outputs are computed once per view and kept
in memory (``cache_trunk``; about 33 KB a view for ``tiny``, far more for ViT-L, where it is
off), so an epoch runs only the trainable top layers and the heads. Model selection on val
GeoGuessr score (PIGEON's headline metric, from the top cell's centroid), with early stopping
after ``patience`` epochs without improvement: top-1 over hundreds of cells moves by a few
locations an epoch while the distances it stands for swing by thousands of km.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ml.data.images import ImageStore, view_table
from ml.eval.metrics import baselines, distance_summary
from ml.geo.haversine import haversine_km
from ml.models.backbone import load_backbone, location_embedding, pick_device, preprocess
from ml.models.geocell import (
    GeocellModel,
    GeocellModelSpec,
    masked_cross_entropy,
    masked_mse,
    smooth_targets,
    soft_cross_entropy,
)
from ml.train.common import adamw, autocast, seed_everything, warmup_cosine
from ml.train.distributed import (
    Checkpoints,
    DistributedBatchSampler,
    all_digests,
    device_for,
    fingerprint,
    setup,
    teardown,
    wrap,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuxWeights:
    koppen: float
    landcover: float
    elevation: float
    population: float
    month: float


@dataclass(frozen=True)
class GeocellModelConfig:
    SECTION: ClassVar[str] = "geocell_model"

    views: int  # views averaged per location, training and evaluation (0 = all)
    trainable_layers: int  # last transformer layers of the vision tower that train
    head: Literal["linear", "mlp"]
    head_hidden: int
    labels: Literal["haversine", "one_hot"]
    tau_km: float
    aux: AuxWeights  # 0 switches a head off
    epochs: int
    batch_size: int  # locations per batch
    lr: float
    weight_decay: float
    warmup_fraction: float
    patience: int  # early stopping: epochs without a better val GeoGuessr score
    seed: int
    device: str
    threads: int
    cache_trunk: bool
    processes: int  # >1: the asset launches torchrun with this many processes (DDP; one per GPU)
    checkpoint_every: int  # optimizer steps between checkpoints in data/cache/geocell_model (0 = none)


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


def all_sum(value: float, d) -> float:
    if not d.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return float(t.item())


@dataclass
class GeocellTrainResult:
    model: GeocellModel
    history: dict[str, list[float]]
    metrics: dict
    seconds: float


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
    from ``checkpoint_dir`` (``ml.train.distributed``)."""
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    d = setup(device)
    device = device_for(d, device)
    clip, _, backbone = load_backbone(streetclip_folder)
    aux = [name for name, w in asdict(cfg.aux).items() if w > 0]
    has_views = locations["id"].astype(str).isin(set(images["location_id"].astype(str)))
    train = locations[(locations["split"] == "train") & has_views].reset_index(drop=True)
    val = locations[(locations["split"] == "val") & has_views].reset_index(drop=True)
    train = train[train["id"].astype(str).isin(train_cell.keys())].reset_index(drop=True)
    stats = regression_stats(train)
    unknown = {"month": train["month"].isna().all(), "koppen": train["koppen_id"].isna().all()}
    dropped = [name for name in aux if unknown.get(name, False)]
    if dropped:  # a head with no known target in training would only learn noise
        log.warning("no training location has a known %s: the head is left out", ", ".join(dropped))
        aux = [name for name in aux if name not in dropped]
    spec = GeocellModelSpec(
        vision_config=clip.config.vision_config.to_dict(),
        projection_dim=clip.config.projection_dim,
        n_cells=len(cells),
        head=cfg.head,
        head_hidden=cfg.head_hidden,
        trainable_layers=cfg.trainable_layers,
        aux=aux,
        backbone=asdict(backbone),
        stats=stats,
        views=cfg.views,
    )
    model = GeocellModel.from_clip(clip, spec).to(device)
    model.freeze_trunk()
    del clip

    ordered = cells.sort_values("cell_id")
    centroids = ordered[["centroid_lat", "centroid_lon"]].to_numpy(np.float64)
    cell_country = ordered["country"].astype(str).to_numpy() if "country" in ordered else None
    t_train = build_targets(train, np.array([train_cell[str(i)] for i in train["id"]]), stats)
    t_val = build_targets(val, lookup(val["lat"].to_numpy(), val["lon"].to_numpy()), stats)
    if cfg.labels == "haversine":
        soft = smooth_targets(t_train.cell, train["lat"].to_numpy(), train["lon"].to_numpy(), centroids, cfg.tau_km)
    else:
        soft = np.eye(len(cells))[t_train.cell]
    soft = torch.tensor(soft, dtype=torch.float32)

    store = ImageStore(store_folder)
    tr_views, va_views = view_table(train["id"], images, cfg.views), view_table(val["id"], images, cfg.views)
    keys = tr_views.keys  # both tables index the same image rows
    tr_index, tr_mask = tr_views.index, tr_views.mask
    va_index, va_mask = va_views.index, va_views.mask
    cache: dict[int, torch.Tensor] = {}

    def hidden_for(view_rows: np.ndarray) -> torch.Tensor:
        """Trunk outputs for image rows (cached when cache_trunk)."""
        todo = [r for r in dict.fromkeys(view_rows.tolist()) if r not in cache]
        out = {}
        for i in range(0, len(todo), 256):
            chunk = todo[i : i + 256]
            pixels = preprocess([store.read(keys[r]) for r in chunk], backbone).to(device)
            with torch.no_grad(), autocast(device):
                h = model.trunk(pixels).float()
            for r, hr in zip(chunk, h):
                out[r] = hr.cpu() if cfg.cache_trunk else hr
        if cfg.cache_trunk:
            cache.update(out)
            out = cache
        return torch.stack([out[r] for r in view_rows.tolist()]).to(device)

    trainable = TopAndHeads(model)

    def forward(index: np.ndarray, mask: np.ndarray, module=trainable) -> dict[str, torch.Tensor]:
        b, v = index.shape
        flat = np.where(mask, index, index[:, :1]).ravel()
        with autocast(device):
            return module(hidden_for(flat), torch.from_numpy(mask).to(device))

    def loss_of(out, t: Targets, rows: np.ndarray, soft_rows: torch.Tensor | None, scale: float = 1.0):
        """The batch's mean loss; ``scale`` = this process's share of the global batch x W, so that
        DDP's averaged gradients are the global batch's."""
        loss = soft_cross_entropy(out["cells"], soft_rows.to(device)) * scale
        weights = asdict(cfg.aux)  # heads left out above are not in aux
        for name in aux:
            target = torch.from_numpy(getattr(t, name)[rows]).to(device)
            regression = name in ("elevation", "population")
            known = torch.isfinite(target) if regression else target >= 0
            # the global batch's known rows (x W: DDP averages the W processes' gradients)
            count = all_sum(float(known.sum()), d) / d.world if d.active else None
            if regression:
                loss = loss + weights[name] * masked_mse(out[name], target.float(), count)
            else:
                loss = loss + weights[name] * masked_cross_entropy(out[name], target, count)
        return loss

    @torch.no_grad()
    def evaluate(index, mask, t: Targets, frame: pd.DataFrame) -> dict[str, float]:
        model.eval()
        logits, aux_out = [], {n: [] for n in aux}
        for i in range(0, len(index), 256):
            out = forward(index[i : i + 256], mask[i : i + 256])
            logits.append(out["cells"].cpu())
            for n in aux:
                aux_out[n].append(out[n].cpu())
        if not logits:
            return {}
        logits = torch.cat(logits)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.numpy()
        guess = top5[:, 0]
        d = haversine_km(frame["lat"], frame["lon"], centroids[guess, 0], centroids[guess, 1])
        metrics = {
            "top1": float(np.mean(guess == t.cell)),
            "top5": float(np.mean((top5 == t.cell[:, None]).any(1))),
        } | distance_summary(d)  # % within each radius (the top cell's centroid), median km, score
        if cell_country is not None and "adm0_a3" in frame:  # the top cell's country, % like the report's
            truth = frame["adm0_a3"].astype(str).to_numpy()
            metrics["country_accuracy"] = float(np.mean(cell_country[guess] == truth) * 100)
        for n in aux:
            pred = torch.cat(aux_out[n]).numpy()
            target = getattr(t, n)
            known = np.isfinite(target) if n in ("elevation", "population") else target >= 0
            if not known.any():
                continue  # e.g. no capture month known: no metric rather than a made-up 0
            if n in ("elevation", "population"):
                scale = stats[f"{n}_std"]
                metrics[f"{n}_mae"] = float(np.mean(np.abs(pred[known] - target[known])) * scale)
            else:
                metrics[f"{n}_accuracy"] = float(np.mean(pred[known].argmax(1) == target[known]))
        return metrics

    untrained = evaluate(va_index, va_mask, t_val, val)
    counts = np.bincount(t_train.cell, minlength=len(cells))
    most_frequent = float(np.mean(t_val.cell == counts.argmax())) if len(val) else 0.0

    params = [p for p in model.parameters() if p.requires_grad]
    sampler = DistributedBatchSampler(len(train), cfg.batch_size, d, cfg.seed, drop_last=False)
    steps = max(1, sampler.steps()) * cfg.epochs
    optimizer = adamw(params, cfg.lr, cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, int(cfg.warmup_fraction * steps), steps)
    history: dict[str, list[float]] = {"train_loss": [], "val_top1": [], "val_top5": [], "val_geoguessr": []}
    best, best_state, best_metrics, stale = -1.0, None, untrained, 0
    key = fingerprint(asdict(cfg), d.world, train["id"].astype(str).tolist(), t_train.cell.tolist(), len(cells))
    checkpoints = Checkpoints(checkpoint_dir, cfg.checkpoint_every, d, key, model, optimizer, scheduler)

    def bookkeeping(epoch: int, step: int, epoch_loss: float) -> dict:
        return {"epoch": epoch, "step": step, "history": history, "best": best, "best_metrics": best_metrics,
                "stale": stale, "best_state": best_state, "epoch_loss": epoch_loss}  # fmt: skip

    start_epoch, start_step, step_count, total = 0, 0, 0, 0.0
    resumed = checkpoints.load()
    if resumed:
        start_epoch, start_step, step_count = resumed["epoch"], resumed["step"], resumed["global_step"]
        history, best, best_metrics, stale = (
            resumed["history"],
            resumed["best"],
            resumed["best_metrics"],
            resumed["stale"],
        )
        best_state, total = resumed["best_state"], resumed["epoch_loss"]
        log.info("geocell_model: resumed at epoch %d, step %d", start_epoch + 1, step_count)
    ddp = wrap(trainable, d, device)
    start = time.perf_counter()
    stopped = bool(resumed and resumed.get("stopped"))
    for epoch in range(start_epoch, 0 if stopped else cfg.epochs):
        model.train()
        first = start_step if epoch == start_epoch else 0
        if first == 0:
            total = 0.0
        plan = list(sampler(epoch, first))
        show = progress and d.main
        for step, rows, global_n in tqdm(plan, desc=f"geocell_model epoch {epoch + 1}/{cfg.epochs}",
                                         disable=not show, mininterval=5):  # fmt: skip
            out = forward(tr_index[rows], tr_mask[rows], ddp)
            loss = loss_of(out, t_train, rows, soft[rows], scale=len(rows) * d.world / global_n)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            step_count += 1
            total += loss.item() * global_n / d.world  # summed over processes below
            if checkpoints.due(step_count) and step + 1 < len(plan) + first:
                checkpoints.save(bookkeeping(epoch, step + 1, total), step_count)
        metrics = evaluate(va_index, va_mask, t_val, val)
        history["train_loss"].append(all_sum(total, d) / max(1, len(train)))
        history["val_top1"].append(metrics.get("top1", 0.0))
        history["val_top5"].append(metrics.get("top5", 0.0))
        history["val_geoguessr"].append(metrics.get("geoguessr", 0.0))
        log.info("epoch %d: loss %.4f val %s", epoch + 1, history["train_loss"][-1], metrics)
        if metrics.get("geoguessr", 0.0) > best:
            best, best_metrics, stale = metrics.get("geoguessr", 0.0), metrics, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        done = stale >= cfg.patience
        if checkpoints.enabled:  # every epoch's end, with the early-stopping state
            checkpoints.save(bookkeeping(epoch + 1, 0, 0.0) | {"stopped": done}, step_count)
        if done:
            break
    seconds = time.perf_counter() - start
    store.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    digests = all_digests(model, d)
    checkpoints.clear()
    teardown(d)
    model.to("cpu").eval()
    medoid = (
        baselines(
            val["lat"], val["lon"], train["lat"], train["lon"], cfg.seed, train.get("country"), val.get("country")
        )
        if len(val) and len(train)
        else {}
    )
    metrics = {
        "val": best_metrics,
        "val_train_medoid": medoid.get("train_medoid", {}),  # the no-skill baselines on the same val locations
        "val_largest_country": medoid.get("largest_country", {}),
        "val_untrained": untrained,
        "val_most_frequent_cell_top1": most_frequent,
        "epochs_run": len(history["train_loss"]),
        "train_locations": len(train),
        "val_locations": len(val),
        "cells": len(cells),
        "aux_heads": aux,
        "processes": d.world,
        "rank_weight_digests": digests,
        "resumed_at_step": resumed["global_step"] if resumed else 0,
    }
    return GeocellTrainResult(model=model, history=history, metrics=metrics, seconds=seconds)
