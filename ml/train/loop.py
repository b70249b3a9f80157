"""The one training loop of both trainers, in the manner of open_clip's
``src/open_clip_train/train.py``: this module owns device, threads, seeding, the process group,
the optimizer (AdamW), the schedule (linear warmup + cosine), gradient accumulation and
clipping, checkpoints, resume and the weight digests; a trainer supplies a ``Task``: its
batches, ``batch -> loss``, what happens at an epoch's end (evaluation, model selection, early
stopping) and the bookkeeping a checkpoint keeps (``ml.train.distributed`` for the mechanisms).

A step: forward and backward of ``grad_accum`` micro-batches, gradients clipped to norm 1, one
optimizer and schedule step. Checkpoints every ``checkpoint_every`` steps and at every epoch's
end (when on); a run resumed from one continues at the saved micro-batch with the saved RNG
states, so it ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ml.models.backbone import pick_device
from ml.train.common import adamw, seed_everything, warmup_cosine
from ml.train.distributed import Checkpoints, Dist, all_digests, device_for, setup, teardown, wrap


@dataclass(frozen=True)
class Schedule:
    epochs: int
    lr: float
    weight_decay: float
    warmup_fraction: float
    checkpoint_every: int  # optimizer steps between checkpoints (0 = none)
    grad_accum: int = 1  # micro-batches per optimizer step


def start(seed: int, threads: int, device: str) -> tuple[Dist, torch.device]:
    """Seeds, torch threads (0 = torch's default), this process's device and process group."""
    seed_everything(seed)
    if threads:
        torch.set_num_threads(threads)
    picked = pick_device(device)
    d = setup(picked)
    return d, device_for(d, picked)


class Task:
    """What a trainer supplies to ``fit``. ``module`` is what trains (and what DDP wraps),
    ``model`` what the checkpoints and digests hold."""

    name: str
    module: torch.nn.Module
    model: torch.nn.Module

    def micro_steps(self) -> int:
        """Micro-batches in an epoch."""
        raise NotImplementedError

    def plan(self, epoch: int, first: int) -> list[tuple[int, object, int]]:
        """(micro-batch index, this process's rows, global batch size) from micro-batch ``first``."""
        raise NotImplementedError

    def batches(self, epoch: int, plan: list):
        """The inputs of each planned micro-batch (default: the plan's rows)."""
        return (rows for _, rows, _ in plan)

    def start_epoch(self, epoch: int, first: int) -> None:
        """Before an epoch's first micro-batch (``first`` > 0: resumed inside the epoch)."""

    def loss(self, ddp: torch.nn.Module, batch, rows, global_n: int) -> tuple[torch.Tensor, float]:
        """The micro-batch's loss to back-propagate, and the figure to log for it."""
        raise NotImplementedError

    def stepped(self, loss: float) -> None:
        """After an optimizer step, with its logged loss."""

    def end_epoch(self, epoch: int) -> bool:
        """After an epoch; True stops training (early stopping)."""
        return False

    def state(self) -> dict:
        """The bookkeeping a checkpoint keeps, restored by ``restore``."""
        return {}

    def restore(self, state: dict) -> None:
        pass


@dataclass
class Fitted:
    seconds: float  # the loop's wall time (resumed: this process's part)
    resumed_at_step: int
    checkpoints: Checkpoints
    d: Dist

    def finish(self, model: torch.nn.Module) -> list[str]:
        """Every process's digest of ``model``'s weights; clears the checkpoints (a finished run
        starts fresh next time) and leaves the process group."""
        digests = all_digests(model, self.d)
        self.checkpoints.clear()
        teardown(self.d)
        return digests


def fit(
    task: Task, params: list, s: Schedule, d: Dist, device, key: str, folder: Path | None, progress: bool
) -> Fitted:
    """Train ``params`` of ``task`` for ``s.epochs`` epochs (or until ``end_epoch`` says stop);
    ``key`` fingerprints params and inputs, so that only a checkpoint of this run is resumed."""
    optimizer = adamw(params, s.lr, s.weight_decay)
    steps = max(1, task.micro_steps() // s.grad_accum) * s.epochs
    scheduler = warmup_cosine(optimizer, int(s.warmup_fraction * steps), steps)
    checkpoints = Checkpoints(folder, s.checkpoint_every, d, key, task.model, optimizer, scheduler)
    epoch0, first0, step_count = 0, 0, 0
    resumed = checkpoints.load()
    if resumed:
        epoch0, first0, step_count = resumed["epoch"], resumed["micro_step"], resumed["global_step"]
        task.restore(resumed["task"])
    ddp = wrap(task.module, d, device)
    began = time.perf_counter()
    for epoch in range(epoch0, 0 if resumed and resumed.get("stopped") else s.epochs):
        first = first0 if epoch == epoch0 else 0
        plan = task.plan(epoch, first)
        task.start_epoch(epoch, first)
        task.module.train()
        optimizer.zero_grad(set_to_none=True)  # micro-batches left over at an epoch's end are dropped
        desc = f"{task.name} epoch {epoch + 1}/{s.epochs}"
        show = progress and d.main
        bar = tqdm(zip(plan, task.batches(epoch, plan)), total=len(plan), desc=desc, disable=not show, mininterval=5)
        running = 0.0
        for k, ((micro, rows, global_n), batch) in enumerate(bar):
            loss, logged = task.loss(ddp, batch, rows, global_n)
            (loss / s.grad_accum).backward()
            running += logged / s.grad_accum
            if (micro + 1) % s.grad_accum:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            task.stepped(running)
            bar.set_postfix(loss=f"{running:.3f}", refresh=False)
            running, step_count = 0.0, step_count + 1
            if checkpoints.due(step_count) and k + 1 < len(plan):  # the epoch's end saves below
                checkpoints.save({"epoch": epoch, "micro_step": micro + 1, "task": task.state()}, step_count)
        stop = task.end_epoch(epoch)
        if checkpoints.enabled:
            checkpoints.save({"epoch": epoch + 1, "micro_step": 0, "task": task.state(), "stopped": stop}, step_count)
        if stop:
            break
    seconds = time.perf_counter() - began
    return Fitted(seconds, resumed["global_step"] if resumed else 0, checkpoints, d)
