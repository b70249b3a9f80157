"""StreetCLIP: symmetric contrastive (InfoNCE) fine-tuning of CLIP on (view, caption) pairs.

Each epoch pairs every training view with one of its captions (seeded); CLIP's loss is the
symmetric cross-entropy over the global batch's image-text similarities (under DDP the
embeddings of every process are gathered, so the negatives are the same as in one process).
AdamW, linear warmup + cosine decay, gradient accumulation; bf16 autocast and channels-last
on GPU only. Retrieval on val (one view per location, its first caption) is measured before
and after training: image -> caption and caption -> image top-1 among the val set.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ml.data.images import ImageStore
from ml.models.backbone import BackboneSpec, build_model, build_tokenizer, preprocess, save_backbone
from ml.settings import StreetclipConfig
from ml.train.common import autocast
from ml.train.distributed import DistributedBatchSampler, fingerprint, gather
from ml.train.loop import Schedule, Task, fit, start

log = logging.getLogger(__name__)


@dataclass
class StreetclipResult:
    losses: list[float]
    retrieval_before: dict[str, float]
    retrieval_after: dict[str, float]
    train_pairs: int
    seconds: float
    images_per_s: float
    extra: dict = field(default_factory=dict)


class PairDataset(Dataset):
    """(view image, caption index) pairs; images decoded from the shards on demand."""

    def __init__(self, store_folder: Path, keys: list[str], captions: list[int]):
        self.store = ImageStore(store_folder)
        self.keys, self.captions = keys, captions

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int):
        return self.store.read(self.keys[i]), self.captions[i]


def _collate(batch):
    images, captions = zip(*batch)
    return list(images), list(captions)


def _tokenize(tokenizer, texts: list[str], max_length: int):
    return tokenizer(texts, padding="longest", max_length=max_length, truncation=True, return_tensors="pt")


@torch.no_grad()
def retrieval(model, tokenizer, spec, store: ImageStore, keys, texts, device) -> dict[str, float]:
    """Image->caption and caption->image top-1 / top-5 accuracy and mean reciprocal rank among
    the given pairs (chance top-1: 1/n)."""
    model.eval()
    img, txt = [], []
    for i in range(0, len(keys), 128):
        pixels = preprocess([store.read(k) for k in keys[i : i + 128]], spec).to(device)
        tok = _tokenize(tokenizer, texts[i : i + 128], spec.max_length).to(device)
        with autocast(device):
            img.append(_features(model.get_image_features(pixel_values=pixels)).float())
            txt.append(_features(model.get_text_features(**tok)).float())
    img = torch.nn.functional.normalize(torch.cat(img), dim=-1)
    txt = torch.nn.functional.normalize(torch.cat(txt), dim=-1)
    sim = img @ txt.T
    diag = sim.diag()
    rank_i2t = (sim > diag[:, None]).sum(1)  # captions scoring above the true one, per image
    rank_t2i = (sim > diag[None, :]).sum(0)
    n = len(keys)
    return {
        "image_to_caption_top1": float((rank_i2t == 0).float().mean()),
        "caption_to_image_top1": float((rank_t2i == 0).float().mean()),
        "image_to_caption_top5": float((rank_i2t < 5).float().mean()),
        "caption_to_image_top5": float((rank_t2i < 5).float().mean()),
        "mean_reciprocal_rank": float(0.5 * ((1 / (rank_i2t + 1)).mean() + (1 / (rank_t2i + 1)).mean())),
        "chance_top1": 1.0 / max(1, n),
        "n": n,
    }


def _features(x):
    """transformers 5 may return a model output instead of a tensor from get_*_features."""
    return x if isinstance(x, torch.Tensor) else x.pooler_output


def clip_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over all image-text pairs of the (gathered) batch."""
    logits = logit_scale.exp() * image_embeds @ text_embeds.T
    labels = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class ContrastiveTask(Task):
    """CLIP's objective for ``ml.train.loop``: each epoch pairs every training view with one of
    its captions (seeded); the loss over the gathered global batch."""

    name = "streetclip"

    def __init__(self, model, tokenizer, spec: BackboneSpec, train: pd.DataFrame, texts, store_folder, cfg, d, device):
        self.model = self.module = model
        self.tokenizer, self.spec, self.train, self.texts = tokenizer, spec, train, texts
        self.store_folder, self.cfg, self.d, self.device = store_folder, cfg, d, device
        self.sampler = DistributedBatchSampler(len(train), cfg.batch_size, d, cfg.seed, drop_last=True)
        self.losses: list[float] = []
        self.seen = 0

    def micro_steps(self) -> int:
        return self.sampler.steps()

    def plan(self, epoch: int, first: int) -> list:
        return list(self.sampler(epoch, first))

    def batches(self, epoch: int, plan: list):
        """(images, caption choice) per micro-batch, decoded by ``num_workers`` DataLoader workers."""
        choice = np.random.default_rng([self.cfg.seed, epoch, 1]).integers(0, 1 << 30, len(self.train))
        choice = [int(c % len(t)) for c, t in zip(choice, self.texts)]
        rows = np.concatenate([r for _, r, _ in plan]) if plan else np.zeros(0, dtype=np.int64)
        data = PairDataset(self.store_folder, self.train["key"].tolist(), choice)
        return DataLoader(
            torch.utils.data.Subset(data, rows.tolist()),
            batch_size=self.cfg.batch_size // self.d.world,
            num_workers=self.cfg.num_workers,
            collate_fn=_collate,
        )

    def loss(self, ddp, batch, idx, global_n: int) -> tuple[torch.Tensor, float]:
        batch_images, caption_choice = batch
        batch_texts = [self.texts[i][c] for i, c in zip(idx, caption_choice)]
        pixels = preprocess(batch_images, self.spec).to(self.device)
        if self.device.type == "cuda":
            pixels = pixels.to(memory_format=torch.channels_last)
        tok = _tokenize(self.tokenizer, batch_texts, self.spec.max_length).to(self.device)
        with autocast(self.device):
            out = ddp(**tok, pixel_values=pixels)
            loss = clip_loss(gather(out.image_embeds, self.d), gather(out.text_embeds, self.d), self.model.logit_scale)
        self.seen += global_n
        return loss, float(loss.detach())

    def stepped(self, loss: float) -> None:
        self.losses.append(loss)

    def state(self) -> dict:
        return {"losses": self.losses, "seen": self.seen}

    def restore(self, state: dict) -> None:
        self.losses, self.seen = state["losses"], state["seen"]


def train_streetclip(
    images: pd.DataFrame,
    captions: pd.DataFrame,
    store_folder: Path,
    reference: Path,
    cfg: StreetclipConfig,
    out_folder: Path,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
) -> StreetclipResult:
    """Fine-tune the backbone on train pairs, save it to ``out_folder`` (rank 0), report
    retrieval. Distributed under torchrun, resumable from ``checkpoint_dir`` (``ml.train.loop``)."""
    d, device = start(cfg.seed, cfg.threads, cfg.device)
    spec = BackboneSpec.named(cfg.backbone)
    model = build_model(spec, cfg.weights).to(device)
    tokenizer = build_tokenizer(spec, reference)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    caps = captions.sort_values(["location_id", "view", "caption_index"])
    by_view = caps.groupby(["location_id", "view"])["text"].apply(list).to_dict()
    split = caps.drop_duplicates(["location_id", "view"]).set_index(["location_id", "view"])["split"].to_dict()
    views = images.assign(split=[split.get((i, v)) for i, v in zip(images["location_id"], images["view"])])
    train = views[views["split"] == "train"].reset_index(drop=True)
    val = views[(views["split"] == "val") & (views["view"] == 0)].sort_values("location_id")
    val = val.head(cfg.val_locations)
    store = ImageStore(store_folder)
    val_keys = val["key"].tolist()
    val_texts = [by_view[(i, v)][0] for i, v in zip(val["location_id"], val["view"])]
    measure = d.main and len(val)
    before = retrieval(model, tokenizer, spec, store, val_keys, val_texts, device) if measure else {}

    texts = [by_view[(i, v)] for i, v in zip(train["location_id"], train["view"])]
    if cfg.batch_size % d.world:
        raise ValueError(f"streetclip: batch_size {cfg.batch_size} must divide evenly among {d.world} processes")
    task = ContrastiveTask(model, tokenizer, spec, train, texts, store_folder, cfg, d, device)
    schedule = Schedule(cfg.epochs, cfg.lr, cfg.weight_decay, cfg.warmup_fraction, cfg.checkpoint_every, cfg.grad_accum)
    key = fingerprint(asdict(cfg), d.world, train["key"].tolist(), texts)
    fitted = fit(task, list(model.parameters()), schedule, d, device, key, checkpoint_dir, progress)
    after = retrieval(model, tokenizer, spec, store, val_keys, val_texts, device) if measure else {}
    store.close()
    digests = fitted.finish(model)
    if d.main:
        save_backbone(model.to("cpu"), tokenizer, spec, out_folder)
    seconds = fitted.seconds
    return StreetclipResult(
        losses=task.losses,
        retrieval_before=before,
        retrieval_after=after,
        train_pairs=len(train),
        seconds=seconds,
        images_per_s=task.seen / seconds if seconds > 0 else 0.0,
        extra={"processes": d.world, "rank_weight_digests": digests, "resumed_at_step": fitted.resumed_at_step},
    )
