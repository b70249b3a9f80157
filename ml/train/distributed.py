"""One training code path for one CPU, one GPU or many GPUs, and checkpoints that survive a kill.

**Distributed.** Under ``torchrun`` with more than one process (``WORLD_SIZE`` > 1) the
training loops join a process group (gloo on CPU, nccl on GPU), wrap the trainable module in
``DistributedDataParallel`` and read their share of every global batch from
``DistributedBatchSampler``; as a plain process they run alone, through the same code. A
training section's ``processes`` param says how many processes the asset starts: more than one
and the asset launches ``torchrun`` itself (``ml.stages.launch``), on this machine, one process per GPU
(or CPU processes with gloo).

``batch_size`` is the **global** batch: each of W processes takes every W-th row of it, and the
losses are scaled so that the averaged gradients equal those of one process on the whole batch.
The contrastive loss gathers every process's embeddings (with gradients), so its negatives are
the whole global batch, as in one process.

**Checkpoints.** Every ``checkpoint_every`` optimizer steps (0 = off) rank 0 writes the model,
optimizer, scheduler, RNG states (Python, NumPy, torch) and the data position (epoch, step in
the epoch) plus the loop's own bookkeeping into ``data/cache/<asset>/checkpoint`` (outside
DVC's outs, which DVC deletes before a stage runs), atomically. A run started again with the
same params and inputs (a fingerprint is checked) resumes from the last checkpoint and ends
with the same weights as an uninterrupted run (deterministic CPU settings). A finished run
deletes its checkpoints: the asset's outputs are the result, and a later run with other inputs
must start fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: torch.device | None = None) -> Dist:
    """Join the process group when started by torchrun with several processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(0, 1, 0)
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(d: Dist, device: torch.device) -> torch.device:
    """Each process its own GPU (LOCAL_RANK); CPU stays CPU."""
    if device.type == "cuda" and d.active:
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return device


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(module: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    if not d.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


class DistributedBatchSampler:
    """Global batches of ``batch_size`` rows from a seeded per-epoch permutation (the same on
    every process); each process yields its share, rows ``rank::world`` of each batch.
    ``drop_last`` drops a final short batch (the contrastive loop); otherwise a final batch is
    kept when every process gets at least one row. ``start_step`` resumes mid-epoch."""

    def __init__(self, n: int, batch_size: int, d: Dist, seed: int, drop_last: bool):
        if batch_size < d.world:
            raise ValueError(f"batch_size {batch_size} is smaller than the {d.world} processes")
        self.n, self.batch_size, self.d, self.seed, self.drop_last = n, batch_size, d, seed, drop_last

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        order = self.order(epoch)
        batches = [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if batches and len(batches[-1]) < (self.batch_size if self.drop_last else self.d.world):
            batches.pop()
        return batches

    def __call__(self, epoch: int, start_step: int = 0):
        """(step, local rows, global batch size) for this process."""
        for step, rows in enumerate(self.global_batches(epoch)):
            if step >= start_step:
                yield step, rows[self.d.rank :: self.d.world], len(rows)

    def steps(self, epoch: int = 0) -> int:
        return len(self.global_batches(epoch))


def gather(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Concatenate every process's rows, with gradients flowing back to each (equal row counts)."""
    if not d.active:
        return t
    import torch.distributed.nn.functional as dnn

    return torch.cat(dnn.all_gather(t), dim=0)


def state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def all_digests(module: torch.nn.Module, d: Dist) -> list[str]:
    """Every process's weight digest (rank order): equal when the processes agree."""
    mine = state_digest(module)
    if not d.active:
        return [mine]
    out: list = [None] * d.world
    dist.all_gather_object(out, mine)
    return out


def fingerprint(*parts) -> str:
    """A hash of the config and inputs: a checkpoint from other params or data is not resumed."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


class Checkpoints:
    """Atomic save / load of the last training state in ``folder`` (rank 0 writes): the model,
    optimizer and scheduler given here, RNG states, and the loop's own bookkeeping."""

    def __init__(self, folder: Path | None, every: int, d: Dist, key: str, model, optimizer, scheduler):
        self.folder, self.every, self.d, self.key = (Path(folder) if folder else None), every, d, key
        self.parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler}

    @property
    def enabled(self) -> bool:
        return bool(self.folder) and self.every > 0

    @property
    def path(self) -> Path | None:
        return self.folder / "last.pt" if self.folder else None

    def due(self, step: int) -> bool:
        return self.enabled and step % self.every == 0

    def save(self, bookkeeping: dict, step: int) -> None:
        if not self.d.main or not self.enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {name: part.state_dict() for name, part in self.parts.items()}
        state |= {"loop": bookkeeping, "fingerprint": self.key, "global_step": step, "rng": rng_states()}
        tmp = self.folder / f".last.pt.{os.getpid()}.part"
        torch.save(state, tmp)
        os.replace(tmp, self.path)
        (self.folder / "state.json").write_text(json.dumps({"global_step": step, "fingerprint": self.key}))

    def load(self) -> dict | None:
        """Restores model, optimizer, scheduler and RNG states; the loop's bookkeeping plus
        ``global_step``, or None when there is no checkpoint of these params and inputs."""
        if not self.path or not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != self.key:
            return None  # other params or inputs: start fresh (the file is replaced at the next save)
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
        set_rng_states(state["rng"])
        return state["loop"] | {"global_step": state["global_step"]}

    def clear(self) -> None:
        if self.d.active:
            dist.barrier()
        if self.d.main and self.folder and self.folder.exists():
            shutil.rmtree(self.folder)


def rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def main_rank() -> bool:
    """Whether this process writes outputs: rank 0 under torchrun, always outside it."""
    return int(os.environ.get("RANK", "0")) == 0
