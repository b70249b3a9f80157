"""The CLIP backbone, its offline tokenizer, and the streetclip asset."""

import json
from pathlib import Path

import numpy as np
import torch

from ml.models.backbone import BackboneSpec, build_model, build_tokenizer, location_embedding, preprocess
from ml.paths import Paths

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "data" / "reference"


def test_reference_tokenizer_matches_openai_ids():
    tok = build_tokenizer(BackboneSpec.named("tiny"), REFERENCE)
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tok) == 49408


def test_preprocess_resizes_crops_and_normalises():
    spec = BackboneSpec.named("tiny")
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255
    x = preprocess([img], spec)
    assert x.shape == (1, 3, 64, 64)
    white = (1 - torch.tensor(spec.image_mean)) / torch.tensor(spec.image_std)
    assert torch.allclose(x[0, :, 32, 32], white, atol=1e-4)  # centre crop kept the white band


def test_location_embedding_is_the_mean_of_its_views():
    v = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]]])
    assert torch.allclose(location_embedding(v[:, :2]), torch.tensor([[2.0, 1.0]]))
    assert torch.allclose(location_embedding(v, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 1.0]]))


def test_vit_l_14_336_builds_offline_and_trains_one_step():
    spec = BackboneSpec.named("vit-l-14-336")
    torch.manual_seed(0)
    model = build_model(spec, "random")  # from the config dict: no download
    assert model.config.vision_config.image_size == 336 and model.config.vision_config.num_hidden_layers == 24
    tok = build_tokenizer(BackboneSpec.named("tiny"), REFERENCE)(
        ["a photo of a cat", "a photo of a dog"], padding=True, return_tensors="pt"
    )
    pixels = torch.randn(2, 3, 336, 336)
    loss = model(**tok, pixel_values=pixels, return_loss=True).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert model.vision_model.encoder.layers[-1].mlp.fc1.weight.grad.abs().sum() > 0


def test_streetclip_smoke_improves_retrieval_and_loads(smoke_chain):
    from transformers import CLIPModel

    root, result = smoke_chain
    meta = result.asset_materializations_for_node("streetclip")[0].metadata
    before, after = meta["retrieval_before"].value, meta["retrieval_after"].value
    assert after["mean_reciprocal_rank"] > before["mean_reciprocal_rank"]
    assert after["image_to_caption_top5"] + after["caption_to_image_top5"] > (
        before["image_to_caption_top5"] + before["caption_to_image_top5"]
    )
    folder = Paths(root).streetclip_model
    assert (folder / "model.safetensors").exists()
    model = CLIPModel.from_pretrained(folder)
    assert (
        model.config.projection_dim
        == json.loads((REPO / "ml/models/configs/tiny.json").read_text())["clip_config"]["projection_dim"]
    )
