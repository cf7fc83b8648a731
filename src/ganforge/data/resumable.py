"""Loaders that a checkpoint written mid-epoch resumes exactly.

A run stopped at batch k of epoch e (preemption) must go on with batch k + 1 of the same
epoch order, drawing the same random numbers as the run that was never stopped. Three
things make that so here:

- the order of an epoch is a function of (seed, epoch) alone: ``EpochSampler`` (a
  ``DistributedSampler``, so Lightning keeps it under DDP instead of wrapping it) and
  ``DeviceBatches`` draw it from their own generator, never from the global stream;
- a loader counts the batches it has handed out this epoch and saves that count
  (``state_dict``, which Lightning stores in checkpoints for loaders that have one); a
  resumed loader skips that many batches at the sampler, without loading them;
- nothing is drawn from the global random stream when an iterator is created (the
  DataLoader gets a generator of its own for its worker seeds), so the stream a
  checkpoint restores is the stream the next batch would have seen.

Lightning fetches sized loaders without prefetching (``_PrefetchDataFetcher`` skips it
when the length is known), so the count of batches handed out is the count trained on.
Flips are drawn on the training step's side (``GANDataModule.on_after_batch_transfer``),
where the global stream is restored, not in worker processes, whose streams are not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler


class EpochSampler(DistributedSampler):
    """Shuffled indices for one rank, from a generator seeded with ``seed + epoch``.

    ``DistributedSampler`` with ``drop_last``: every rank gets as many indices, disjoint.
    ``skip(n)`` drops the first ``n`` indices of the next pass (batches already trained on).
    """

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self._skip = 0

    def skip(self, n: int) -> None:
        self._skip = int(n)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        start, self._skip = self._skip, 0
        return iter(indices[start:])


class EpochPlace:
    """Where a loader is in its epoch: saved with the run, taken up by the next pass on resume."""

    def __init__(self) -> None:
        self.epoch, self.position = 0, 0  # position: batches handed out in the current pass
        self._resume: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def start(self, epoch: int) -> int:
        """Begin a pass of ``epoch``: the batches to skip (a checkpoint from an epoch's end
        resumes at the start of the next epoch)."""
        resume, self._resume = self._resume, None
        self.epoch = epoch
        self.position = resume[1] if resume is not None and resume[0] == epoch else 0
        return self.position


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved and restored with the run.

    ``len`` stays the whole epoch (Lightning counts the batches of an epoch from it); a
    resumed pass yields only the batches the epoch has left.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.place = EpochPlace()

    def state_dict(self) -> dict[str, int]:
        return self.place.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.place.load_state_dict(state)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.place.epoch)

    def __iter__(self):
        # a generator: its body runs at the first batch, after Lightning set the epoch
        place = self.place
        start = place.start(int(getattr(self.sampler, "epoch", 0)))
        if start and isinstance(self.sampler, EpochSampler):
            self.sampler.skip(start * self.batch_size)
        # fresh draws (an iterable dataset) have nothing to skip: the restored random
        # stream draws the batches the stopped run would have drawn next
        for batch in super().__iter__():
            place.position += 1
            yield batch


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator of its own, so a loader draws nothing from the global stream."""
    return torch.Generator().manual_seed(int(seed))
