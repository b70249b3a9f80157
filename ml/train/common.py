"""What both training loops share: seeding, the schedule, precision, the loss-curve picture."""

from __future__ import annotations

import contextlib
import math
import random
import sys

import numpy as np
import torch

from ml.geo.maps import figure_png


def show_progress() -> bool:
    """Progress bars on an interactive terminal only."""
    return sys.stderr.isatty()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused (one kernel for all parameters): on these CPUs its step over the tiny CLIP's
    7M parameters takes 6.6 ms against 51 ms for the per-parameter loop, a quarter of a
    streetclip step."""
    params = list(params)
    fused = all(p.dtype.is_floating_point for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup to the base learning rate, then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(device: torch.device):
    """bf16 autocast on GPU only: on these CPUs bf16 autocast is ~15x slower than fp32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def curves_png(curves: dict[str, list[float]], title: str, xlabel: str = "step") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
    for name, values in curves.items():
        if values:
            ax.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return figure_png(fig)
