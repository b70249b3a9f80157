"""Run by tests/test_distributed.py, alone or under torchrun: one global batch's gradients for a
classifier (per-sample mean loss, scaled per process) and for CLIP's gathered contrastive loss.
Rank 0 saves them to argv[1]."""

import sys

import torch

from ml.train.contrastive import clip_loss
from ml.train.distributed import DistributedBatchSampler, gather, setup, teardown, wrap


class TwoTowers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.image, self.text = torch.nn.Linear(6, 4), torch.nn.Linear(5, 4)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, x, t):
        n = torch.nn.functional.normalize
        return n(self.image(x), dim=-1), n(self.text(t), dim=-1)


def main(out: str) -> None:
    d = setup(torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(10, 5, generator=g), torch.randint(0, 3, (10,), generator=g)
    images, texts = torch.randn(8, 6, generator=g), torch.randn(8, 5, generator=g)
    torch.manual_seed(0)
    classifier = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    towers = TwoTowers()
    # a classifier batch of 5 rows: shares of 3 and 2 rows on two processes
    _, rows, n = next(DistributedBatchSampler(10, 5, d, 0, drop_last=False)(0))
    ddp_classifier = wrap(classifier, d, torch.device("cpu"))  # kept: its hooks reduce in backward
    loss = torch.nn.functional.cross_entropy(ddp_classifier(x[rows]), y[rows])
    (loss * (len(rows) * d.world / n)).backward()
    # a contrastive batch of 8 pairs, 4 per process, negatives gathered from both
    _, rows, _ = next(DistributedBatchSampler(8, 8, d, 0, drop_last=True)(0))
    ddp_towers = wrap(towers, d, torch.device("cpu"))
    img, txt = ddp_towers(images[rows], texts[rows])
    clip_loss(gather(img, d), gather(txt, d), towers.logit_scale).backward()
    if d.main:
        grads = {f"classifier.{k}": p.grad for k, p in classifier.named_parameters()}
        grads |= {f"towers.{k}": p.grad for k, p in towers.named_parameters()}
        torch.save(grads, out)
    teardown(d)


if __name__ == "__main__":
    main(sys.argv[1])
