"""Hierarchical zero-shot classification: known answers with fixed embeddings, and loading any
CLIP checkpoint folder."""

import numpy as np
import pandas as pd
import pytest
import torch

from ml.eval.zeroshot import ADMIN1_PROMPT, COUNTRY_PROMPT, ZeroShot, load_clip
from ml.geo.haversine import haversine_km, spherical_mean
from ml.models.backbone import BackboneSpec

TRAIN = pd.DataFrame(
    {
        "country": ["FR", "FR", "FR", "DE", "DE"],
        "country_name": ["France", "France", "France", "Germany", "Germany"],
        "admin1": ["Paris", "Provence", "Provence", "Bavaria", "Berlin"],
        "lat": [48.85, 43.0, 44.0, 48.1, 52.5],
        "lon": [2.35, 5.0, 6.0, 11.6, 13.4],
    }
)
PROMPTS = [COUNTRY_PROMPT.format(country=c) for c in ("France", "Germany")] + [
    ADMIN1_PROMPT.format(admin1=a, country=c)
    for a, c in [("Bavaria", "Germany"), ("Berlin", "Germany"), ("Paris", "France"), ("Provence", "France")]
]


class OneHotTokenizer:
    """Each known prompt is one token: its index."""

    def __call__(self, texts, **_):
        return _Batch({"input_ids": torch.tensor([[PROMPTS.index(t)] for t in texts])})


class _Batch(dict):
    def to(self, device):
        return self


class OneHotText(torch.nn.Module):
    """Text embedding = the prompt's one-hot vector; images are embedded by the test."""

    def __init__(self):
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(np.log(20.0), dtype=torch.float32))

    def get_text_features(self, input_ids, **_):
        return torch.nn.functional.one_hot(input_ids[:, 0], len(PROMPTS)).float()


class FixedImages(ZeroShot):
    def embed_groups(self, groups):
        return torch.nn.functional.normalize(
            torch.tensor(np.array([g[0] for g in groups]), dtype=torch.float32), dim=-1
        )


def classifier(top: int) -> ZeroShot:
    spec = BackboneSpec.named("tiny")
    return FixedImages(OneHotText(), OneHotTokenizer(), spec, TRAIN, top_countries=top, device="cpu")


def image(*prompts: str, weights=None) -> list[np.ndarray]:
    v = np.zeros(len(PROMPTS))
    for p, w in zip(prompts, weights or [1.0] * len(prompts)):
        v[PROMPTS.index(p)] = w
    return [v]


def test_the_country_then_the_region_and_its_training_centroid():
    zs = classifier(top=2)
    france, germany = PROMPTS[0], PROMPTS[1]
    out = zs.predict([image(france, PROMPTS[5]), image(germany, PROMPTS[3])])
    assert out["country"].tolist() == ["FR", "DE"] and out["admin1"].tolist() == ["Provence", "Berlin"]
    lat, lon = spherical_mean(np.array([43.0, 44.0]), np.array([5.0, 6.0]))
    assert (out["lat"][0], out["lon"][0]) == pytest.approx((lat, lon))
    assert haversine_km(lat, lon, 43.5, 5.5) < 1.0  # the centroid of two nearby points is their middle
    assert (out["lat"][1], out["lon"][1]) == pytest.approx((52.5, 13.4))


def test_regions_are_only_scored_within_the_top_countries():
    france, germany, provence = PROMPTS[0], PROMPTS[1], PROMPTS[5]
    # Germany a little ahead of France; within France, Provence clearly; Germany's regions tie:
    # P(DE) = 0.557 and P(FR) = 0.443, so Provence (0.443 x 1) beats Bavaria (0.557 x 0.5) ...
    photo = image(germany, france, provence, weights=[1.0, 0.98, 1.0])
    assert classifier(top=2).predict([photo])["admin1"][0] == "Provence"
    # ... unless only the best country's regions are scored
    assert classifier(top=1).predict([photo])["country"][0] == "DE"
    p_country, joint = classifier(top=1).scores(classifier(top=1).embed_groups([photo]))
    assert p_country.sum() == pytest.approx(1.0) and joint.sum() == pytest.approx(p_country.max())


def test_any_clip_folder_loads(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    from ml.models.backbone import build_tokenizer
    from tests.conftest import REPO

    spec = BackboneSpec.named("tiny")
    CLIPModel(CLIPConfig(**spec.clip_config)).save_pretrained(tmp_path)
    build_tokenizer(spec, REPO / "data" / "reference").save_pretrained(tmp_path)
    model, tokenizer, loaded = load_clip(str(tmp_path), tmp_path / "unused")
    assert loaded.image_size == spec.clip_config["vision_config"]["image_size"]
    zs = ZeroShot(model, tokenizer, loaded, TRAIN, top_countries=2, device="cpu")
    out = zs.predict([[np.full((40, 30, 3), 128, np.uint8)], [np.zeros((20, 20, 3), np.uint8)] * 2])
    assert len(out) == 2 and set(out["country"]) <= {"FR", "DE"}
    with pytest.raises(FileNotFoundError, match="materialize the streetclip asset"):
        load_clip("streetclip", tmp_path / "missing")
