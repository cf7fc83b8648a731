"""data.hflip: a random half of each batch mirrored, as a tensor op on the batch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ganforge.data.augment import random_hflip
from ganforge.data.base import GANDataModule, TensorDataset


def _asymmetric(n: int) -> torch.Tensor:
    x = torch.zeros(n, 1, 2, 3)
    x[..., 0] = 1.0  # bright left column: a flip moves it to the right
    return x


def test_random_hflip_mirrors_about_half():
    x = _asymmetric(4000)
    out = random_hflip(x, generator=torch.Generator().manual_seed(0))
    flipped = out[:, 0, 0, 2] == 1
    assert 0.45 < flipped.float().mean() < 0.55
    assert torch.equal(out[flipped], x[flipped].flip(-1)) and torch.equal(out[~flipped], x[~flipped])


@pytest.mark.parametrize("on_device", [False, True])
def test_training_batches_are_flipped_on_the_step_side(on_device):
    # flips are drawn where the training step runs (from the stream a checkpoint restores),
    # for the DataLoader path and the on-device path alike; batches for metrics are not flipped
    dm = GANDataModule(batch_size=64, image_size=3, channels=1, hflip=True, on_device=on_device)
    dm.train_set = TensorDataset(_asymmetric(256))
    batch = next(iter(dm.train_dataloader()))
    assert (batch[0][:, 0, 0, 2] == 1).sum() == 0  # as loaded: none mirrored yet
    dm.trainer = SimpleNamespace(training=True)
    x, y = dm.on_after_batch_transfer(batch, 0)
    assert x.shape == (64, 1, 2, 3) and y.shape == (64,)
    assert 0 < (x[:, 0, 0, 2] == 1).sum() < 64
    dm.trainer = SimpleNamespace(training=False)
    assert dm.on_after_batch_transfer(batch, 0) is batch


def test_hflip_is_for_images():
    with pytest.raises(ValueError, match="no image_size"):
        GANDataModule(batch_size=8, data_shape=(2,), hflip=True)
