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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ml.data.images import ImageStore
from ml.models.backbone import BackboneSpec, build_model, build_tokenizer, pick_device, preprocess, save_backbone
from ml.train.common import adamw, autocast, seed_everything, warmup_cosine
from ml.train.distributed import (
    Checkpoints,
    DistributedBatchSampler,
    all_digests,
    device_for,
    fingerprint,
    gather,
    setup,
    teardown,
    wrap,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreetclipConfig:
    SECTION: ClassVar[str] = "streetclip"

    backbone: str  # a file in ml/models/configs: tiny | vit-l-14-336
    weights: Literal["random", "pretrained"]
    epochs: int  # 0 = no contrastive training (the ablation): the initial model is saved
    batch_size: int
    grad_accum: int
    lr: float
    weight_decay: float
    warmup_fraction: float
    seed: int
    device: str  # auto | cpu | cuda
    num_workers: int
    val_locations: int  # locations in the val retrieval measurement
    threads: int  # torch CPU threads (0 = torch's default)
    processes: int  # >1: the asset launches torchrun with this many processes (DDP; one per GPU)
    checkpoint_every: int  # optimizer steps between checkpoints in data/cache/streetclip (0 = none)


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
    retrieval. Distributed under torchrun, resumable from ``checkpoint_dir``
    (``ml.train.distributed``)."""
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    d = setup(device)
    device = device_for(d, device)
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
    sampler = DistributedBatchSampler(len(train), cfg.batch_size, d, cfg.seed, drop_last=True)
    micro_per_epoch = sampler.steps()
    steps_per_epoch = max(1, micro_per_epoch // cfg.grad_accum)
    total = steps_per_epoch * cfg.epochs
    optimizer = adamw(model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, int(cfg.warmup_fraction * total), total)
    key = fingerprint(asdict(cfg), d.world, train["key"].tolist(), texts)
    checkpoints = Checkpoints(checkpoint_dir, cfg.checkpoint_every, d, key, model, optimizer, scheduler)
    losses: list[float] = []
    start_epoch, start_micro, step_count, seen = 0, 0, 0, 0
    resumed = checkpoints.load()
    if resumed:
        start_epoch, start_micro = resumed["epoch"], resumed["micro_step"]
        losses, step_count, seen = resumed["losses"], resumed["global_step"], resumed["seen"]
        log.info("streetclip: resumed at epoch %d, step %d", start_epoch + 1, step_count)
    ddp = wrap(model, d, device)
    local_batch = cfg.batch_size // d.world
    start = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        first = start_micro if epoch == start_epoch else 0
        choice = np.random.default_rng([cfg.seed, epoch, 1]).integers(0, 1 << 30, len(train))
        choice = [int(c % len(t)) for c, t in zip(choice, texts)]
        plan = list(sampler(epoch, first))
        rows = np.concatenate([r for _, r, _ in plan]) if plan else np.zeros(0, dtype=np.int64)
        data = PairDataset(store_folder, train["key"].tolist(), choice)
        loader = DataLoader(
            torch.utils.data.Subset(data, rows.tolist()),
            batch_size=local_batch,
            num_workers=cfg.num_workers,
            collate_fn=_collate,
        )
        model.train()
        optimizer.zero_grad(set_to_none=True)  # micro-batches left over at an epoch's end are dropped
        show = progress and d.main
        bar = tqdm(zip(plan, loader), total=len(plan), desc=f"streetclip epoch {epoch + 1}/{cfg.epochs}",
                   disable=not show, mininterval=5)  # fmt: skip
        running = 0.0
        for (micro, idx, global_n), (batch_images, caption_choice) in bar:
            batch_texts = [texts[i][c] for i, c in zip(idx, caption_choice)]
            pixels = preprocess(batch_images, spec).to(device)
            if device.type == "cuda":
                pixels = pixels.to(memory_format=torch.channels_last)
            tok = _tokenize(tokenizer, batch_texts, spec.max_length).to(device)
            with autocast(device):
                out = ddp(**tok, pixel_values=pixels)
                loss = clip_loss(gather(out.image_embeds, d), gather(out.text_embeds, d), model.logit_scale)
            (loss / cfg.grad_accum).backward()
            running += float(loss.detach()) / cfg.grad_accum
            seen += global_n
            if (micro + 1) % cfg.grad_accum == 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(running)
                bar.set_postfix(loss=f"{running:.3f}")
                running = 0.0
                step_count += 1
                if checkpoints.due(step_count):
                    state = {"epoch": epoch, "micro_step": micro + 1, "losses": losses, "seen": seen}
                    checkpoints.save(state, step_count)
    seconds = time.perf_counter() - start
    after = retrieval(model, tokenizer, spec, store, val_keys, val_texts, device) if measure else {}
    store.close()
    digests = all_digests(model, d)
    if d.main:
        save_backbone(model.to("cpu"), tokenizer, spec, out_folder)
    checkpoints.clear()
    teardown(d)
    return StreetclipResult(
        losses=losses,
        retrieval_before=before,
        retrieval_after=after,
        train_pairs=len(train),
        seconds=seconds,
        images_per_s=seen / seconds if seconds > 0 else 0.0,
        extra={
            "processes": d.world,
            "rank_weight_digests": digests,
            "resumed_at_step": resumed["global_step"] if resumed else 0,
            "is_main": d.main,
        },  # fmt: skip
    )
