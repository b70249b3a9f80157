"""CLIP's vision transformer in plain torch: the tower the geocell model trains and predicts with.

The modules carry the names of transformers' ``CLIPVisionModel`` (``embeddings``,
``pre_layrnorm``, ``encoder.layers[i]`` with ``self_attn`` / ``layer_norm1`` / ``mlp`` /
``layer_norm2``, ``post_layernorm``), so a CLIP checkpoint's vision weights load into it as they
are and bundles saved with transformers' tower load unchanged. Inference then needs torch alone:
importing transformers' CLIP modelling costs seconds, more than loading a bundle and predicting,
so ``roost predict`` and ``roost serve`` leave it to training (``CLIPModel``, the tokenizer).
``tests/test_vit.py`` holds the tower to transformers' output on the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class VisionConfig:
    """The fields of a ``CLIPVisionConfig`` the tower uses (defaults: transformers' own)."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 32
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5

    @classmethod
    def of(cls, config: dict) -> VisionConfig:
        """From a ``CLIPVisionConfig.to_dict()`` (the geocell model's saved spec); other keys
        (dropout, initialisation, projection size) do not change inference and are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known})


ACTIVATIONS = {
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


class Embeddings(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.image_size, self.patch_size = c.image_size, c.patch_size
        self.class_embedding = nn.Parameter(torch.randn(c.hidden_size))
        self.patch_embedding = nn.Conv2d(c.num_channels, c.hidden_size, c.patch_size, c.patch_size, bias=False)
        self.position_embedding = nn.Embedding((c.image_size // c.patch_size) ** 2 + 1, c.hidden_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        b, _, h, w = pixels.shape
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(f"images of {h}x{w} px: the tower takes {self.image_size}x{self.image_size}")
        patches = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_embedding.expand(b, 1, -1), patches], dim=1)
        return tokens + self.position_embedding.weight


class Attention(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, weights: bool = False):
        """(output, attention weights (B, heads, T, T) when ``weights`` else None)."""
        b, t, d = hidden_states.shape
        q, k, v = (
            p(hidden_states).view(b, t, self.heads, d // self.heads).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        if weights:
            a = torch.softmax((q @ k.transpose(-1, -2)) * (d // self.heads) ** -0.5, dim=-1)
            out = a @ v
        else:
            a, out = None, F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d)), a


class MLP(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        if c.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act {c.hidden_act!r}: the tower knows {sorted(ACTIVATIONS)}")
        self.act = ACTIVATIONS[c.hidden_act]
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.self_attn = Attention(c)
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = MLP(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, attention_mask=None) -> torch.Tensor:
        h = hidden_states + self.self_attn(self.layer_norm1(hidden_states), attention_mask)[0]
        return h + self.mlp(self.layer_norm2(h))


class Encoder(nn.Module):
    def __init__(self, c: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.num_hidden_layers))


class VisionTower(nn.Module):
    """pixels (B, 3, S, S) -> the class token after the last layer's norm (B, hidden_size)."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = Encoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        h = self.pre_layrnorm(self.embeddings(pixels))
        for layer in self.encoder.layers:
            h = layer(h)
        return self.post_layernorm(h[:, 0])
