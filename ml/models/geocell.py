"""The geocell classifier: streetclip's vision tower (``ml.models.vit``, plain torch), a cell head
and multi-task heads.

Only the last ``trainable_layers`` transformer layers of the vision tower (plus its final
norm and projection) and the heads are trained; the trunk below is frozen, so its outputs
can be computed once per view (``trunk``) and the trainable ``top`` run on them each epoch.

Haversine label smoothing (PIGEON): for a location x whose true cell is c_true, cell i gets
``y_i = exp(-(hav(c_i, x) - hav(c_true, x)) / tau)`` (R = 6371 km), so the true cell weighs 1
and cells whose centroids lie nearer x than the true centroid weigh more than 1. The loss is
the cross-entropy against y normalised to sum 1, which is a softmax of -hav(c_i, x) / tau:
the subtracted distance cancels in the normalisation (``smooth_targets``). PIGEON's released code subtracts the
*nearest* centroid's distance instead of the true cell's; Roost follows the paper's formula.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ml.geo.haversine import haversine_km
from ml.models.vit import VisionConfig, VisionTower

AUX_OUTPUTS = {"koppen": 31, "landcover": 17, "elevation": 1, "population": 1, "month": 12}


def smooth_labels(
    true_cell: np.ndarray, lat: np.ndarray, lon: np.ndarray, centroids: np.ndarray, tau_km: float
) -> np.ndarray:
    """Unnormalised haversine-smoothed targets (n, cells); the true cell's weight is 1."""
    d = haversine_km(lat[:, None], lon[:, None], centroids[None, :, 0], centroids[None, :, 1])
    d_true = d[np.arange(len(lat)), true_cell]
    return np.exp(-(d - d_true[:, None]) / tau_km)


def smooth_targets(true_cell, lat, lon, centroids, tau_km: float) -> np.ndarray:
    """``smooth_labels`` normalised to sum 1, computed stably: the normalised targets are a
    softmax of ``-hav(c_i, x) / tau`` (the true cell's distance cancels), whereas the raw
    weights overflow float32 for points thousands of km from their cell's centroid."""
    d = haversine_km(lat[:, None], lon[:, None], centroids[None, :, 0], centroids[None, :, 1])
    z = -d / tau_km
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against targets normalised to sum 1 per row (one-hot gives plain CE)."""
    p = targets / targets.sum(dim=1, keepdim=True)
    return -(p * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, count: float | None = None) -> torch.Tensor:
    """Cross-entropy over rows whose target is known (target < 0 means unknown): their mean, or
    their sum / ``count`` (under DDP the known rows of the whole global batch, so that averaged
    gradients are the global batch's mean, whatever each process's share of known rows)."""
    known = target >= 0
    if not known.any():
        return logits.sum() * 0.0
    loss = nn.functional.cross_entropy(logits[known], target[known], reduction="sum")
    return loss / (count if count else int(known.sum()))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, count: float | None = None) -> torch.Tensor:
    """Squared error over rows whose target is finite: their mean, or their sum / ``count``."""
    known = torch.isfinite(target)
    if not known.any():
        return pred.sum() * 0.0
    return ((pred[known] - target[known]) ** 2).sum() / (count if count else int(known.sum()))


@dataclass
class GeocellModelSpec:
    """Everything needed to rebuild the model (saved as config.json beside the weights)."""

    vision_config: dict
    projection_dim: int
    n_cells: int
    head: str  # linear | mlp
    head_hidden: int
    trainable_layers: int
    aux: list[str]
    backbone: dict  # the BackboneSpec (preprocessing) as a dict
    stats: dict  # regression targets' normalisation
    views: int


class GeocellModel(nn.Module):
    def __init__(self, spec: GeocellModelSpec):
        super().__init__()
        self.spec = spec
        self.vision = VisionTower(VisionConfig.of(spec.vision_config))  # CLIP's tower, without transformers
        hidden = self.vision.config.hidden_size
        self.projection = nn.Linear(hidden, spec.projection_dim, bias=False)
        d = spec.projection_dim
        if spec.head == "mlp":
            self.cell_head = nn.Sequential(
                nn.Linear(d, spec.head_hidden), nn.GELU(), nn.Linear(spec.head_hidden, spec.n_cells)
            )
        else:
            self.cell_head = nn.Linear(d, spec.n_cells)
        self.aux_heads = nn.ModuleDict({name: nn.Linear(d, AUX_OUTPUTS[name]) for name in spec.aux})
        self.split = len(self.vision.encoder.layers) - spec.trainable_layers
        if not 0 <= self.split <= len(self.vision.encoder.layers):
            raise ValueError(f"trainable_layers {spec.trainable_layers} exceeds the tower's depth")

    @classmethod
    def from_clip(cls, clip, spec: GeocellModelSpec) -> GeocellModel:
        model = cls(spec)
        model.vision.load_state_dict(clip.vision_model.state_dict())
        model.projection.load_state_dict(clip.visual_projection.state_dict())
        return model

    def freeze_trunk(self) -> None:
        """Freeze everything below the last ``trainable_layers`` layers (with all layers
        trainable, the patch and position embeddings train too: nothing is frozen)."""
        for p in self.vision.parameters():
            p.requires_grad = self.split == 0
        for layer in self.vision.encoder.layers[self.split :]:
            for p in layer.parameters():
                p.requires_grad = True
        for p in self.vision.post_layernorm.parameters():
            p.requires_grad = True

    def trunk(self, pixels: torch.Tensor) -> torch.Tensor:
        """Hidden states below the trainable layers: (B, tokens, hidden); the pixels themselves
        when every layer trains."""
        if self.split == 0:
            return pixels
        h = self.vision.pre_layrnorm(self.vision.embeddings(pixels))
        for layer in self.vision.encoder.layers[: self.split]:
            h = layer(h, None)
        return h

    def top(self, hidden: torch.Tensor) -> torch.Tensor:
        """View embeddings from trunk hidden states: (B, projection_dim)."""
        if self.split == 0:
            hidden = self.vision.pre_layrnorm(self.vision.embeddings(hidden))
        for layer in self.vision.encoder.layers[self.split :]:
            hidden = layer(hidden, None)
        return self.projection(self.vision.post_layernorm(hidden[:, 0]))

    def heads(self, location: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"cells": self.cell_head(location)}
        for name, head in self.aux_heads.items():
            out[name] = head(location).squeeze(-1) if AUX_OUTPUTS[name] == 1 else head(location)
        return out

    def embed_views(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.top(self.trunk(pixels))


def save_geocell_model(model: GeocellModel, folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(model.spec.__dict__, indent=2))
    return folder


def load_geocell_model(folder: Path) -> GeocellModel:
    folder = Path(folder)
    spec = GeocellModelSpec(**json.loads((folder / "config.json").read_text()))
    model = GeocellModel(spec)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    model.eval()
    return model
