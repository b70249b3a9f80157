"""The CLIP backbone: one code path (transformers ``CLIPModel``), architectures as data files in
``ml/models/configs/*.json``.

A spec names its architecture (``clip_config``, used for random initialisation), where
pretrained weights come from (``pretrained``: a hub id or a local folder; only read when the
caller asks for pretrained weights), its tokenizer (``reference``: CLIP's BPE built offline
from data/reference; ``pretrained``: the model's own files) and its image preprocessing
(size, CLIP mean/std). A trained backbone is saved as a ``save_pretrained`` folder (safetensors)
with its tokenizer and ``roost_backbone.json``, and loads back through ``load_backbone``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ml.data.images import fit_square

CONFIGS = Path(__file__).with_name("configs")
SPEC_FILE = "roost_backbone.json"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    description: str
    pretrained: str | None
    tokenizer: str
    image_size: int
    image_mean: list[float]
    image_std: list[float]
    max_length: int
    clip_config: dict

    @classmethod
    def named(cls, name: str) -> BackboneSpec:
        path = CONFIGS / f"{name}.json"
        if not path.exists():
            known = sorted(p.stem for p in CONFIGS.glob("*.json"))
            raise ValueError(f"backbone {name!r} not found in {CONFIGS}; known: {known}")
        return cls(**json.loads(path.read_text()))


def build_model(spec: BackboneSpec, weights: str = "random"):
    """A CLIPModel: ``random`` from the spec's config (no download), or ``pretrained``."""
    from transformers import CLIPConfig, CLIPModel

    if weights == "pretrained":
        if not spec.pretrained:
            raise ValueError(f"backbone {spec.name!r} names no pretrained weights; use weights: random")
        return CLIPModel.from_pretrained(spec.pretrained)
    if weights != "random":
        raise ValueError(f"weights {weights!r}: use random or pretrained")
    return CLIPModel(CLIPConfig(**spec.clip_config))


def build_tokenizer(spec: BackboneSpec, reference: Path):
    if spec.tokenizer == "reference":
        from ml.models.tokenizer import reference_tokenizer  # transformers: off inference's import path

        return reference_tokenizer(str(Path(reference) / "clip_bpe_simple_vocab_16e6.txt.gz"))
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(spec.pretrained)


def save_backbone(model, tokenizer, spec: BackboneSpec, folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=2))
    return folder


def load_backbone(folder: Path):
    """(model, tokenizer, spec) from a folder written by ``save_backbone``."""
    from transformers import CLIPModel, CLIPTokenizer

    folder = Path(folder)
    spec = BackboneSpec(**json.loads((folder / SPEC_FILE).read_text()))
    return CLIPModel.from_pretrained(folder), CLIPTokenizer.from_pretrained(folder), spec


def preprocess(images: list[np.ndarray] | np.ndarray, spec: BackboneSpec) -> torch.Tensor:
    """uint8 RGB images -> normalised float tensor (B, 3, S, S): shorter side resized to S
    (bicubic), centre crop, CLIP mean/std. No torchvision needed."""
    x = (
        torch.from_numpy(np.stack([fit_square(img, spec.image_size) for img in images]))
        .permute(0, 3, 1, 2)
        .float()
        .div_(255.0)
    )
    mean = torch.tensor(spec.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.image_std).view(1, 3, 1, 1)
    return (x - mean) / std


def location_embedding(view_embeddings: torch.Tensor, view_mask: torch.Tensor | None = None) -> torch.Tensor:
    """A location's embedding: the mean of its views' embeddings. (B, V, D) [+ (B, V) mask]."""
    if view_mask is None:
        return view_embeddings.mean(dim=1)
    m = view_mask.to(view_embeddings.dtype).unsqueeze(-1)
    return (view_embeddings * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
