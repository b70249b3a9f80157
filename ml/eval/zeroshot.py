"""StreetCLIP's zero-shot geolocation, with no head: hierarchical text-prompt classification.

As in PIGEON's paper (and StreetCLIP's own evaluation), a CLIP model scores the photo against
one prompt per country, ``"A Street View photo in {country}."``; then, within the
``top_countries`` best countries, against one prompt per admin-1 region,
``"A Street View photo in {admin1}, {country}."``. A region's score is
P(country) x P(region | country) (each a softmax over CLIP's scaled cosine logits); the guess is
the best region's training centroid (the spherical mean of its training locations). The
candidate countries and regions are those of the training split, with their Natural Earth names.
A location's image embedding is the normalised mean of its views' embeddings.

Works with the pipeline's ``streetclip`` weights (``"streetclip"`` in params), with any folder
written by ``save_backbone``, and with any CLIP checkpoint ``CLIPModel.from_pretrained`` reads
(a local folder, or a hub id such as ``geolocal/StreetCLIP`` where the hub can be reached).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ml.geo.haversine import spherical_mean
from ml.models.backbone import SPEC_FILE, BackboneSpec, load_backbone, pick_device, preprocess

COUNTRY_PROMPT = "A Street View photo in {country}."
ADMIN1_PROMPT = "A Street View photo in {admin1}, {country}."
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def load_clip(name: str, streetclip_folder: Path):
    """(model, tokenizer, spec) for ``name``: ``streetclip`` (the pipeline's asset), a
    ``save_backbone`` folder, or any CLIP checkpoint (folder or hub id)."""
    from transformers import CLIPModel, CLIPTokenizer

    folder = Path(streetclip_folder) if name == "streetclip" else Path(name)
    if (folder / SPEC_FILE).exists():
        return load_backbone(folder)
    if name == "streetclip":
        raise FileNotFoundError(f"{folder}: no streetclip model; materialize the streetclip asset first")
    model = CLIPModel.from_pretrained(name)
    vision, text = model.config.vision_config, model.config.text_config
    spec = BackboneSpec(
        name=str(name),
        description=f"CLIP checkpoint {name}",
        pretrained=str(name),
        tokenizer="pretrained",
        image_size=vision.image_size,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        max_length=text.max_position_embeddings,
        clip_config={},
    )
    return model, CLIPTokenizer.from_pretrained(name), spec


def _features(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else x.pooler_output


class ZeroShot:
    """Hierarchical country -> admin-1 zero-shot classifier over the training split's regions."""

    def __init__(self, model, tokenizer, spec: BackboneSpec, train: pd.DataFrame, top_countries: int, device="auto"):
        if top_countries < 1:
            raise ValueError(f"top_countries is {top_countries}; it must be at least 1")
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer, self.spec, self.top = tokenizer, spec, top_countries
        t = train.dropna(subset=["country"]).copy()
        t["country_name"] = t["country_name"].fillna(t["country"]).astype(str)
        t["admin1"] = t["admin1"].astype(object).where(t["admin1"].notna(), None)
        countries = t.groupby("country", sort=True)["country_name"].first()
        self.countries = countries.index.to_numpy(dtype=object)
        regions = []
        for (country, admin1), part in t.groupby(["country", t["admin1"].fillna("")], sort=True):
            lat, lon = spherical_mean(part["lat"].to_numpy(), part["lon"].to_numpy())
            regions.append({"country": country, "admin1": admin1 or None, "lat": lat, "lon": lon, "n": len(part)})
        self.regions = pd.DataFrame(regions)
        self.region_country = self.regions["country"].map({c: i for i, c in enumerate(self.countries)}).to_numpy()
        names = countries.to_dict()
        self.country_text = self._embed_text([COUNTRY_PROMPT.format(country=names[c]) for c in self.countries])
        self.region_text = self._embed_text(
            [
                ADMIN1_PROMPT.format(admin1=r.admin1, country=names[r.country])
                if r.admin1
                else COUNTRY_PROMPT.format(country=names[r.country])
                for r in self.regions.itertuples()
            ]
        )
        self.scale = float(self.model.logit_scale.detach().exp()) if hasattr(self.model, "logit_scale") else 100.0

    @torch.no_grad()
    def _embed_text(self, texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), 256):
            tok = self.tokenizer(
                texts[i : i + 256],
                padding="longest",
                max_length=self.spec.max_length,
                truncation=True,
                return_tensors="pt",
            ).to(self.device)
            out.append(_features(self.model.get_text_features(**tok)).float().cpu())
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    @torch.no_grad()
    def embed_groups(self, groups: list[list[np.ndarray]]) -> torch.Tensor:
        images = [img for g in groups for img in g]
        sizes = [len(g) for g in groups]
        views = []
        for i in range(0, len(images), 64):
            pixels = preprocess(images[i : i + 64], self.spec).to(self.device)
            views.append(_features(self.model.get_image_features(pixel_values=pixels)).float().cpu())
        views = torch.nn.functional.normalize(torch.cat(views), dim=-1)
        means = torch.stack([v.mean(0) for v in torch.split(views, sizes)])
        return torch.nn.functional.normalize(means, dim=-1)

    def scores(self, emb: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(P(country), P(country) x P(region | country) over the top countries; 0 elsewhere)."""
        p_country = torch.softmax(self.scale * emb @ self.country_text.T, dim=-1).numpy()
        logits = (self.scale * emb @ self.region_text.T).numpy()
        joint = np.zeros_like(logits)
        top = np.argsort(-p_country, axis=1)[:, : self.top]
        for i, row in enumerate(top):
            for c in row:
                members = np.flatnonzero(self.region_country == c)
                z = logits[i, members] - logits[i, members].max()
                joint[i, members] = p_country[i, c] * np.exp(z) / np.exp(z).sum()
        return p_country, joint

    def predict(self, groups: list[list[np.ndarray]]) -> pd.DataFrame:
        """Per group: lat, lon (the chosen region's training centroid), country, admin1."""
        if not groups:
            return pd.DataFrame(columns=["lat", "lon", "country", "admin1"])
        _, joint = self.scores(self.embed_groups(groups))
        best = self.regions.iloc[joint.argmax(1)].reset_index(drop=True)
        return best[["lat", "lon", "country", "admin1"]]
