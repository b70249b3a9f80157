"""Geolocate images with a model bundle: the Python API behind ``roost predict``.

``Geolocator(bundle)`` verifies and loads the bundle once; ``predict_files`` takes image
paths (optionally grouped: the views of one location are averaged, as in training) and returns
one result per input or group: the refined guess, the place it names, an uncertainty radius,
the top cells and what the multi-task heads infer. A file that cannot be read gives a result
with an ``error`` and the others go on.

The uncertainty radius: the smallest distance r around the guess such that the cells whose
centroids lie within r hold at least half of the model's probability. A confident model on a
small cell gives a small radius, a spread-out prediction a large one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ml.bundle import Bundle
from ml.config import load_config
from ml.data.captions import KOPPEN_NAMES, MONTHS
from ml.data.images import ImageRejected, load_image
from ml.data.sources import IMAGE_COLUMNS, image_paths
from ml.geo.boundaries import AdminIndex, locate
from ml.geo.gazetteer import Gazetteer
from ml.geo.haversine import haversine_km
from ml.geo.maps import figure_png, finish_png, world_axes
from ml.geo.reference import LANDCOVER_NAMES
from ml.models.backbone import BackboneSpec, location_embedding, pick_device, preprocess
from ml.models.geocell import load_geocell_model
from ml.refine.refine import CellGeometry, refine_guess
from ml.settings import BundleConfig, ImagesConfig, RefineConfig

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".heic", ".heif"}


@dataclass
class Item:
    """One prediction unit: a single image, or the views of one location."""

    name: str
    paths: list[Path]


class Geolocator:
    def __init__(self, bundle: Path | str, device: str = "auto", threads: int = 0, top_k: int = 5):
        if threads:
            torch.set_num_threads(threads)
        self.bundle = Bundle(Path(bundle))
        self.folder, self.manifest = self.bundle.folder, self.bundle.manifest
        self.image_domain = load_config(BundleConfig, self.bundle.params).image_domain
        self.refine = load_config(RefineConfig, self.bundle.params)
        self.max_pixels = load_config(ImagesConfig, self.bundle.params).max_pixels  # the decompression-bomb limit
        self.device = pick_device(device)
        self.model = load_geocell_model(self.bundle.model).to(self.device)
        self.spec = BackboneSpec(**self.model.spec.backbone)
        self.cells = self.bundle.cells(["cell_id", "centroid_lat", "centroid_lon", "country", "admin1"])
        self.centroids = self.cells[["centroid_lat", "centroid_lon"]].to_numpy(np.float64)
        self.cell_geometry = CellGeometry.of(self.centroids, self.cells["country"])
        self.prototypes = self.bundle.prototypes()
        self.top_k = top_k
        self._places = None

    def cell_lookup(self):
        """(lat, lon) -> cell id with the bundle's geocells (polygons, else nearest training point)."""
        return self.bundle.cell_index().lookup

    # -- naming places ---------------------------------------------------------------------
    def _namer(self):
        if self._places is None:
            self._places = (
                AdminIndex.build(*self.bundle.admin_tables()),
                Gazetteer(self.bundle.towns()),
            )
        return self._places

    def name_places(self, lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
        admin, gazetteer = self._namer()
        places = locate(lat, lon, admin, cap_km=50.0)
        return pd.concat([places, gazetteer.nearest(lat, lon)], axis=1)

    # -- inference -------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, images: list[np.ndarray], groups: list[int], n_groups: int) -> torch.Tensor:
        """Location embeddings: each group's mean view embedding."""
        self.model.eval()
        views = self.model.embed_views(preprocess(images, self.spec).to(self.device)).float().cpu()
        width = max(np.bincount(groups, minlength=n_groups).max(), 1)
        stacked = torch.zeros(n_groups, width, views.shape[1])
        mask = torch.zeros(n_groups, width, dtype=torch.bool)
        fill = np.zeros(n_groups, dtype=int)
        for v, g in enumerate(groups):
            stacked[g, fill[g]] = views[v]
            mask[g, fill[g]] = True
            fill[g] += 1
        return location_embedding(stacked, mask)

    @torch.no_grad()
    def predict_arrays(self, groups_of_images: list[list[np.ndarray]], also: tuple[str, ...] = ()) -> list[dict]:
        """Predictions for groups of RGB arrays (one group = the views of one location); ``also``:
        other ``refine.guess`` modes whose guesses each result carries under ``other_guesses``
        (mode -> [lat, lon]; the report's rows for them)."""
        images = [img for group in groups_of_images for img in group]
        group_of = [g for g, group in enumerate(groups_of_images) for _ in group]
        emb = self.embed(images, group_of, len(groups_of_images))
        out = self.model.heads(emb.to(self.device))
        probs = torch.softmax(out["cells"].float(), dim=1).cpu().numpy()
        guess, *more = (
            refine_guess(probs, emb.numpy(), self.cell_geometry, self.prototypes, self.refine_as(m))
            for m in (self.refine.guess, *also)
        )
        others = dict(zip(also, more))
        places = self.name_places(guess.lat, guess.lon)
        results = []
        for i in range(len(groups_of_images)):
            d = haversine_km(guess.lat[i], guess.lon[i], self.centroids[:, 0], self.centroids[:, 1])
            order = np.argsort(d)
            radius = float(d[order][np.searchsorted(np.cumsum(probs[i][order]), 0.5)])
            top = np.argsort(-probs[i])[: self.top_k]
            place = places.iloc[i]
            result = {
                "lat": round(float(guess.lat[i]), 5),
                "lon": round(float(guess.lon[i]), 5),
                "country": _text(place["country"]),
                "country_name": _text(place["country_name"]),
                "admin1": _text(place["admin1"]),
                "town": _text(place["town"]),
                "town_distance_km": round(float(place["town_distance_km"]), 1),
                "radius_km": round(radius, 1),
                "refined": bool(guess.prototype[i] >= 0),
                "top_cells": [
                    {
                        "cell_id": int(c),
                        "probability": round(float(probs[i, c]), 4),
                        "lat": round(float(self.centroids[c, 0]), 4),
                        "lon": round(float(self.centroids[c, 1]), 4),
                        "adm0_a3": _text(self.cells.loc[c, "country"]),
                        "admin1": _text(self.cells.loc[c, "admin1"]),
                    }
                    for c in top
                ],
            }
            result |= self._aux(out, i)
            if others:
                result["other_guesses"] = {m: [float(g.lat[i]), float(g.lon[i])] for m, g in others.items()}
            results.append(result)
        return results

    def refine_as(self, guess: str) -> RefineConfig:
        """The bundle's refine settings with another ``guess`` mode."""
        return replace(self.refine, guess=guess)

    def _aux(self, out: dict, i: int) -> dict:
        stats, extra = self.model.spec.stats, {}
        if "koppen" in out:
            codes = list(KOPPEN_NAMES)
            k = codes[int(out["koppen"][i].argmax())]
            extra["climate"] = f"{k} ({KOPPEN_NAMES[k]})"
        if "landcover" in out:
            extra["landcover"] = LANDCOVER_NAMES.get(int(out["landcover"][i].argmax()))
        if "elevation" in out:
            extra["elevation_m"] = round(float(out["elevation"][i]) * stats["elevation_std"] + stats["elevation_mean"])
        if "population" in out:
            z = float(out["population"][i]) * stats["population_std"] + stats["population_mean"]
            extra["population_density"] = round(float(np.expm1(max(z, 0.0))), 1)
        if "month" in out:
            extra["month"] = MONTHS[int(out["month"][i].argmax())]
        return extra

    def predict_items(self, items: list[Item], batch_size: int = 32, progress: bool = False) -> list[dict]:
        """Predictions for items of image files; unreadable files give per-item errors."""
        from tqdm import tqdm

        results: list[dict] = []
        batch: list[tuple[Item, list[np.ndarray]]] = []

        def flush():
            if batch:
                for (item, _), r in zip(batch, self.predict_arrays([imgs for _, imgs in batch])):
                    results.append({"input": item.name, "views": len(item.paths)} | r)
                batch.clear()

        for item in tqdm(items, desc="roost predict", disable=not progress, mininterval=2):
            images, errors = [], []
            for p in item.paths:
                try:
                    images.append(load_image(p, self.max_pixels))
                except ImageRejected as e:
                    errors.append(f"{p}: {e}")
            if errors:
                flush()
                results.append({"input": item.name, "error": "; ".join(errors)})
                continue
            batch.append((item, images))
            if sum(len(imgs) for _, imgs in batch) >= batch_size:
                flush()
        flush()
        order = {it.name: k for k, it in enumerate(items)}
        return sorted(results, key=lambda r: order[r["input"]])


def _text(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or pd.isna(v) else str(v)


def collect_items(paths: list[str], group_views: bool) -> list[Item]:
    """Image files, folders (recursive) and manifests (.csv/.parquet) -> prediction items.
    With ``group_views``, the images of one folder or of one manifest id form one item."""
    items: list[Item] = []
    for raw in paths:
        p = Path(raw)
        if p.suffix.lower() in (".csv", ".parquet") and p.is_file():
            items += _manifest_items(p, group_views)
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if group_views:
                by_folder: dict[Path, list[Path]] = {}
                for f in files:
                    by_folder.setdefault(f.parent, []).append(f)
                items += [Item(str(folder), fs) for folder, fs in by_folder.items()]
            else:
                items += [Item(str(f), [f]) for f in files]
        else:
            items.append(Item(str(p), [p]))
    return items


def _manifest_items(path: Path, group_views: bool) -> list[Item]:
    parquet = path.suffix.lower() == ".parquet"
    table = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str, keep_default_na=False)
    if not set(IMAGE_COLUMNS) & set(table.columns):
        raise ValueError(f"{path}: a manifest needs an image_path (or image_paths) column")
    items: dict[str, Item] = {}
    for k, files in enumerate(image_paths(table, path.parent)):
        key = str(table["id"].iloc[k]) if group_views and "id" in table.columns else f"{path}:{k + 1}"
        if key in items:
            items[key].paths += files
        else:
            items[key] = Item(key, files)
    return list(items.values())


def to_geojson(results: list[dict]) -> dict:
    features = []
    for r in results:
        if "error" in r:
            continue
        props = {k: v for k, v in r.items() if k not in ("lat", "lon")}
        features.append(
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]}, "properties": props}
        )
    return {"type": "FeatureCollection", "features": features}


def to_rows(results: list[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        row = {k: v for k, v in r.items() if k != "top_cells"}
        if "top_cells" in r:
            row["top_cells"] = json.dumps(r["top_cells"])
        rows.append(row)
    return pd.DataFrame(rows)


def attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): per layer, heads averaged, the residual added
    (0.5 A + 0.5 I, rows renormalised), layers multiplied; the class token's row over the
    patch tokens, normalised to sum 1. attentions: per layer (B, heads, T, T) -> (B, T - 1)."""
    rollout = None
    for a in attentions:
        a = a.float().mean(dim=1)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    cls = rollout[:, 0, 1:]
    return cls / cls.sum(dim=-1, keepdim=True)


@torch.no_grad()
def explain(model, spec: BackboneSpec, image: np.ndarray) -> np.ndarray:
    """Where the vision transformer looked: the rollout over patches as a (grid, grid) map
    summing to 1. The attention is computed explicitly, which returns its weights."""
    vision = model.vision
    h = vision.pre_layrnorm(vision.embeddings(preprocess([image], spec)))
    attentions = []
    for layer in vision.encoder.layers:
        x, weights = layer.self_attn(layer.layer_norm1(h), weights=True)
        attentions.append(weights)
        h = h + x
        h = h + layer.mlp(layer.layer_norm2(h))
    heat = attention_rollout(attentions)[0]
    grid = int(round(heat.numel() ** 0.5))
    return heat.view(grid, grid).numpy()


def explain_png(image: np.ndarray, heat: np.ndarray, title: str = "") -> bytes:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2), dpi=90)
    axes[0].imshow(image)
    axes[1].imshow(image)
    axes[1].imshow(
        heat, cmap="inferno", alpha=0.6, extent=(0, image.shape[1], image.shape[0], 0), interpolation="bilinear"
    )
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_title("input", fontsize=8)
    axes[1].set_title(title or "attention rollout", fontsize=8)
    return figure_png(fig)


def map_png(results: list[dict], countries=None) -> bytes:
    """The guesses (stars) and their top cells (dots sized by probability) on a world map."""
    fig, ax = world_axes(countries)
    for r in results:
        if "error" in r:
            continue
        cells = r["top_cells"]
        ax.scatter(
            [c["lon"] for c in cells],
            [c["lat"] for c in cells],
            s=[5 + 200 * c["probability"] for c in cells],
            alpha=0.4,
            c="#1f77b4",
            linewidths=0,
        )
        ax.scatter([r["lon"]], [r["lat"]], marker="*", s=80, c="#d62728")
        ax.annotate(Path(r["input"]).name, (r["lon"], r["lat"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    return finish_png(fig, ax)
