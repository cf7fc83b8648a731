"""data.on_device: batches sampled from a tensor on the accelerator, without a DataLoader."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from ganforge.data.base import GANDataModule, TensorDataset
from ganforge.data.device import DeviceBatches
from ganforge.data.digits import DigitsDataModule


def _set(n: int = 100):
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return x, torch.arange(n)


def test_one_epoch_is_a_permutation_without_the_last_partial_batch():
    x, y = _set(100)
    batches = DeviceBatches(x, y, batch_size=16, seed=0)
    assert len(batches) == 6
    seen = [yb for _, yb in batches]
    assert len(seen) == 6 and all(len(b) == 16 for b in seen)
    flat = torch.cat(seen)
    assert len(flat.unique()) == 96  # no repeats within an epoch
    xb, yb = next(iter(batches))
    assert xb.dtype == torch.float32 and xb.shape == (16, 1, 2, 2)
    torch.testing.assert_close(xb[:, 0, 0, 0], yb.float() * (2 / 255) - 1)  # uint8 -> [-1, 1], paired


def test_epochs_differ_and_replay_under_the_same_seed():
    x, y = _set(64)
    a = DeviceBatches(x, y, 8, seed=3)
    first, second = torch.cat([b for _, b in a]), torch.cat([b for _, b in a])
    assert not torch.equal(first, second)  # a new order each pass
    b = DeviceBatches(x, y, 8, seed=3)
    b.sampler.set_epoch(1)  # what Lightning does at the start of epoch 1
    assert torch.equal(torch.cat([yb for _, yb in b]), second)


def test_ranks_get_disjoint_shards():
    x, y = _set(103)
    shards = [
        torch.cat([yb for _, yb in DeviceBatches(x, y, 10, rank=r, world_size=3, seed=1)]) for r in range(3)
    ]
    assert all(len(s) == 30 for s in shards)
    together = torch.cat(shards)
    assert len(together.unique()) == 90
    with pytest.raises(ValueError, match="outside world_size"):
        DeviceBatches(x, y, 10, rank=3, world_size=3)


def test_float_data_passes_through_unchanged():
    x = torch.randn(20, 1, 4, 4)
    y = torch.arange(20)
    for xb, yb in DeviceBatches(x, y, 5):
        assert torch.equal(xb, x[yb])


def test_datamodule_on_device_is_reproducible_under_seed_everything():
    def draw(seed):
        L.seed_everything(seed)
        dm = DigitsDataModule(image_size=8, batch_size=32, on_device=True)
        dm.setup()
        loader = dm.train_dataloader()
        assert isinstance(loader, DeviceBatches) and len(loader) == 1797 // 32
        return torch.cat([yb for _, yb in loader])

    first = draw(7)
    assert torch.equal(first, draw(7))
    # the order is the seed's: another seed shuffles differently (a fixed or missing shuffle
    # would repeat as well)
    assert not torch.equal(first, draw(8))


def test_on_device_needs_an_in_memory_set():
    class Points(GANDataModule):
        def setup(self, stage=None):
            self.train_set = torch.utils.data.TensorDataset(torch.zeros(64, 2))

    with pytest.raises(ValueError, match="needs the training set in memory"):
        Points(batch_size=8, on_device=True).train_dataloader()


def test_on_device_trains_with_lightning(tmp_path):
    """One epoch through a real Trainer: Lightning takes the iterable and sets its epoch."""

    class Probe(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def training_step(self, batch, i):
            x, y = batch
            self.seen.append(y)
            return (self.w * x.mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = GANDataModule(batch_size=4, image_size=2, channels=1, on_device=True)
    dm.train_set = TensorDataset(*_set(16))
    probe = Probe()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(probe, datamodule=dm)
    assert len(probe.seen) == 8
    epoch0, epoch1 = torch.cat(probe.seen[:4]), torch.cat(probe.seen[4:])
    assert sorted(epoch0.tolist()) == list(range(16)) == sorted(epoch1.tolist())
    assert not torch.equal(epoch0, epoch1)
