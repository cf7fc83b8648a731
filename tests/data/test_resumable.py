"""Loaders that resume mid-epoch: the batches after a stop are the batches that would have come."""

from __future__ import annotations

from itertools import chain

import pytest
import torch

from ganforge.data.base import TensorDataset
from ganforge.data.device import DeviceBatches
from ganforge.data.resumable import EpochSampler, ResumableLoader, seeded_generator


def _loader(n: int = 96, batch_size: int = 8, num_workers: int = 0, rank: int = 0, world: int = 1):
    data = TensorDataset(torch.arange(n, dtype=torch.float32).view(n, 1), torch.arange(n))
    return ResumableLoader(
        data,
        batch_size=batch_size,
        sampler=EpochSampler(data, num_replicas=world, rank=rank, seed=7),
        drop_last=True,
        num_workers=num_workers,
        collate_fn=lambda b: b,
        generator=seeded_generator(7),
    )


def _labels(batches) -> list[list[int]]:
    return [y.tolist() for _, y in batches]


def _epoch(loader, epoch: int) -> list[list[int]]:
    loader.sampler.set_epoch(epoch)
    return _labels(loader)


def _stopped_after(loader, epoch: int, k: int) -> tuple[list[list[int]], dict]:
    loader.sampler.set_epoch(epoch)
    it, seen = iter(loader), []
    for _ in range(k):
        seen.append(next(it)[1].tolist())
    return seen, loader.state_dict()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_resumed_loader_serves_the_rest_of_the_epoch(num_workers):
    whole = _epoch(_loader(), epoch=3)
    seen, state = _stopped_after(_loader(num_workers=num_workers), epoch=3, k=5)
    assert state == {"epoch": 3, "position": 5}
    resumed = _loader(num_workers=num_workers)  # a new process: nothing carried over but the state
    resumed.load_state_dict(state)
    rest = _epoch(resumed, epoch=3)
    assert seen + rest == whole
    assert len(resumed) == len(whole) == 12  # the epoch's length stays whole for Lightning's counts
    assert _epoch(resumed, epoch=4) == _epoch(_loader(), epoch=4)  # the next epoch is whole again


def test_a_state_from_an_epochs_end_starts_the_next_epoch_whole():
    loader = _loader()
    loader.load_state_dict({"epoch": 3, "position": 12})
    assert _epoch(loader, epoch=4) == _epoch(_loader(), epoch=4)


def test_epoch_orders_depend_on_seed_and_epoch_only_and_draw_nothing_from_the_global_stream():
    before = torch.get_rng_state()
    a, b = _epoch(_loader(), 0), _epoch(_loader(), 1)
    assert torch.equal(torch.get_rng_state(), before)
    assert a == _epoch(_loader(), 0) and a != b
    assert sorted(chain.from_iterable(a)) == list(range(96))


def test_ranks_get_disjoint_equal_shards_and_resume_alike():
    shards = [_epoch(_loader(n=100, world=3, rank=r), 2) for r in range(3)]
    flat = [list(chain.from_iterable(s)) for s in shards]
    assert all(len(f) == len(flat[0]) for f in flat)
    assert not set(flat[0]) & set(flat[1]) and not set(flat[1]) & set(flat[2])
    seen, state = _stopped_after(_loader(n=100, world=3, rank=1), epoch=2, k=2)
    resumed = _loader(n=100, world=3, rank=1)
    resumed.load_state_dict(state)
    assert seen + _epoch(resumed, 2) == shards[1]


def test_device_batches_resume_mid_epoch():
    x, y = torch.rand(80, 1, 2, 2), torch.arange(80)

    def batches():
        return DeviceBatches(x, y, batch_size=8, seed=5)

    full = batches()
    full.sampler.set_epoch(2)
    whole = _labels(full)
    stopped = batches()
    stopped.sampler.set_epoch(2)
    it = iter(stopped)
    seen = [next(it)[1].tolist() for _ in range(3)]
    state = stopped.state_dict()
    assert state == {"epoch": 2, "position": 3}
    resumed = batches()
    resumed.load_state_dict(state)
    assert seen + _labels(resumed) == whole
