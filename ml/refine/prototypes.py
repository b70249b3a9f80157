"""PIGEON's prototypes: within each geocell, OPTICS clusters of the training locations; each
cluster is a prototype with its mean embedding and spherical-mean location.

A cluster needs at least ``min_samples`` members; a cell with no such cluster (few points, or
all noise) gets one prototype of all its points, so every cell has at least one.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.numpy import load_file, save_file

from ml.data.images import view_table
from ml.geo.haversine import spherical_mean
from ml.models.backbone import BackboneSpec, location_embedding, preprocess
from ml.settings import PrototypesConfig


@dataclass
class Prototypes:
    embeddings: np.ndarray  # (P, D) float32
    lat: np.ndarray
    lon: np.ndarray
    cell: np.ndarray  # (P,) int64
    members: list[list[str]]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "prototype_id": np.arange(len(self.cell)),
                "cell_id": self.cell,
                "lat": self.lat,
                "lon": self.lon,
                "n_members": [len(m) for m in self.members],
                "members": self.members,
            }
        )

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {
                "embeddings": self.embeddings.astype(np.float32),
                "lat": self.lat.astype(np.float64),
                "lon": self.lon.astype(np.float64),
                "cell": self.cell.astype(np.int64),
            },
            str(folder / "prototypes.safetensors"),
        )

    @classmethod
    def load(cls, folder: Path) -> Prototypes:
        t = load_file(str(Path(folder) / "prototypes.safetensors"))
        return cls(t["embeddings"], t["lat"], t["lon"], t["cell"], [])


def cluster_cell(lat: np.ndarray, lon: np.ndarray, min_samples: int, xi: float) -> np.ndarray:
    """OPTICS labels (-1 noise) of one cell's locations, haversine metric."""
    from sklearn.cluster import OPTICS

    if len(lat) < max(min_samples, 2):
        return np.full(len(lat), -1)
    coords = np.radians(np.stack([lat, lon], axis=1))
    return OPTICS(min_samples=min_samples, xi=xi, metric="haversine").fit(coords).labels_


def _cluster_task(task):
    cells, lats, lons, min_samples, xi = task
    return [(c, cluster_cell(la, lo, min_samples, xi)) for c, la, lo in zip(cells, lats, lons)]


@torch.no_grad()
def location_embeddings(model, images: pd.DataFrame, ids: list[str], store, batch_size: int) -> np.ndarray:
    """Each location's embedding (mean of its views') through the trained geocell model."""
    spec = BackboneSpec(**model.spec.backbone)
    table = view_table(ids, images, model.spec.views)
    out = []
    model.eval()
    for i in range(0, len(ids), batch_size):
        flat, m = table.flat_rows(slice(i, i + batch_size))
        pixels = preprocess([store.read(table.keys[r]) for r in flat], spec)
        emb = model.embed_views(pixels).view(m.shape[0], m.shape[1], -1)
        out.append(location_embedding(emb, torch.from_numpy(m)).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.spec.projection_dim), np.float32)


def build_prototypes(
    ids: np.ndarray, lat: np.ndarray, lon: np.ndarray, cell: np.ndarray, embeddings: np.ndarray, cfg: PrototypesConfig
) -> tuple[Prototypes, float]:
    """Prototypes of every cell; returns them and the clustering time in seconds."""
    start = time.perf_counter()
    groups = pd.Series(np.arange(len(cell))).groupby(cell).indices
    cells = sorted(groups)
    tasks = []
    step = max(1, len(cells) // (4 * max(1, cfg.workers)) + 1)
    for i in range(0, len(cells), step):
        chunk = cells[i : i + step]
        tasks.append(
            (
                [c for c in chunk],
                [lat[groups[c]] for c in chunk],
                [lon[groups[c]] for c in chunk],
                cfg.min_samples,
                cfg.xi,
            )
        )
    if cfg.workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
            results = [r for chunk in pool.map(_cluster_task, tasks) for r in chunk]
    else:
        results = [r for t in tasks for r in _cluster_task(t)]
    emb, plat, plon, pcell, members = [], [], [], [], []
    for c, labels in results:
        rows = groups[c]
        clusters = [rows[labels == k] for k in np.unique(labels[labels >= 0])]
        clusters = [r for r in clusters if len(r) >= cfg.min_samples] or [rows]
        for r in clusters:
            la, lo = spherical_mean(lat[r], lon[r])
            emb.append(embeddings[r].mean(axis=0))
            plat.append(la)
            plon.append(lo)
            pcell.append(c)
            members.append([str(i) for i in ids[r]])
    protos = Prototypes(
        np.array(emb, np.float32).reshape(len(emb), -1),
        np.array(plat),
        np.array(plon),
        np.array(pcell, np.int64),
        members,
    )
    return protos, time.perf_counter() - start
