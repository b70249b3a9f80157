"""The plain-torch vision tower (ml/models/vit.py) is transformers' CLIPVisionModel: the same
weights give the same embeddings, and inference imports no transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ml.models.backbone import BackboneSpec, build_model
from ml.models.vit import VisionConfig, VisionTower
from tests.conftest import REPO


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_tower_matches_transformers_on_the_same_weights(act):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = {**BackboneSpec.named("tiny").clip_config["vision_config"], "hidden_act": act}
    reference = CLIPVisionModel(CLIPVisionConfig(**config)).eval()
    tower = VisionTower(VisionConfig.of(reference.config.to_dict())).eval()
    tower.load_state_dict(reference.state_dict())  # strict: every name and shape is transformers'
    pixels = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = reference(pixel_values=pixels).pooler_output
        got = tower(pixels)
    assert got.shape == expected.shape == (3, config["hidden_size"])
    assert torch.allclose(got, expected, atol=1e-5)


def test_explicit_attention_equals_the_fused_one():
    """``weights=True`` (what the explanation map reads) computes the same output as the fused
    kernel, and its weights are distributions over the tokens."""
    torch.manual_seed(1)
    c = VisionConfig.of(BackboneSpec.named("tiny").clip_config["vision_config"])
    attn = VisionTower(c).encoder.layers[0].self_attn
    x = torch.randn(2, 17, c.hidden_size)
    with torch.no_grad():
        fused, none = attn(x)
        explicit, weights = attn(x, weights=True)
    assert none is None and weights.shape == (2, c.num_attention_heads, 17, 17)
    assert torch.allclose(fused, explicit, atol=1e-5)
    assert torch.allclose(weights.sum(dim=-1), torch.ones(2, c.num_attention_heads, 17))


def test_a_clip_checkpoint_loads_into_the_tower():
    clip = build_model(BackboneSpec.named("tiny"))
    tower = VisionTower(VisionConfig.of(clip.config.vision_config.to_dict()))
    tower.load_state_dict(clip.vision_model.state_dict())


def test_config_errors_name_the_problem():
    c = VisionConfig.of({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "hidden_act": "swish"})
    with pytest.raises(ValueError, match="hidden_act 'swish'"):
        VisionTower(c)
    tower = VisionTower(VisionConfig.of({"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}))
    with pytest.raises(ValueError, match="images of 64x64 px: the tower takes 224x224"):
        tower(torch.zeros(1, 3, 64, 64))


def test_inference_imports_no_transformers():
    """What ``roost predict`` and ``roost serve`` import to load a bundle and predict leaves
    transformers (seconds of imports) to training."""
    code = "import sys, ml.predict, ml.cli, ml.serve.app; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
