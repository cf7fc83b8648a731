"""Batches drawn from a copy of the training set held on the accelerator.

For datasets that fit in accelerator memory (digits, MNIST, CIFAR-10: 150 MB as
uint8) a DataLoader only adds work: worker processes, pinned-memory copies and a
host-to-device transfer per step. Here the whole set lives on the device as one
tensor; each epoch is a ``randperm`` drawn there and each batch one gather, with
uint8 -> float done on the fly.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ganforge.data.pixels import to_float_images
from ganforge.data.resumable import EpochPlace


def epoch_seed() -> int:
    """The seed every rank agrees on: the one ``seed_everything`` exported.

    Lightning's DistributedSampler takes its seed from the same variable, so both
    paths shuffle reproducibly and identically on every rank.
    """
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class _Epoch:
    """What Lightning looks for on ``loader.sampler``: it calls ``set_epoch`` each epoch."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class DeviceBatches:
    """Iterable of ``(x, y)`` batches without replacement, ``len`` = batches per epoch.

    Each epoch's order is ``randperm`` of a generator seeded with ``seed + epoch``, so a
    run (and a run resumed at an epoch boundary) sees the same batches. Under DDP every
    rank draws the same permutation and keeps every ``world_size``-th index from its
    ``rank``: disjoint shards, as DistributedSampler gives. The last partial batch is
    dropped, as the DataLoader path does.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size = int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed = int(seed)
        self.sampler = _Epoch()
        self.place = EpochPlace()

    def state_dict(self) -> dict[str, int]:
        return self.place.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.place.load_state_dict(state)
        self.sampler.set_epoch(self.place.epoch)

    def __len__(self) -> int:
        return (len(self.x) // self.world_size) // self.batch_size

    def __iter__(self):
        epoch = self.sampler.epoch
        # outside a Trainer nobody calls set_epoch: move on by one for the next pass
        self.sampler.epoch += 1
        place = self.place
        start = place.start(epoch)
        g = torch.Generator(device=self.device).manual_seed(self.seed + epoch)
        n = len(self.x) - len(self.x) % self.world_size
        order = torch.randperm(len(self.x), generator=g, device=self.device)[:n]
        shard = order[self.rank :: self.world_size]
        bs = self.batch_size
        for b in range(start, len(self)):
            place.position = b + 1
            idx = shard[b * bs : (b + 1) * bs]
            yield to_float_images(self.x[idx]), self.y[idx]
