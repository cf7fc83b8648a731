"""data.hflip: a random half of each batch mirrored, as a tensor op on the batch."""

from __future__ import annotations

import pytest
import torch

from ganforge.data.augment import FlipCollate, random_hflip
from ganforge.data.base import GANDataModule, TensorDataset
from ganforge.data.device import DeviceBatches


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


def test_dataloader_path_flips_batches():
    dm = GANDataModule(batch_size=64, image_size=3, channels=1, hflip=True)
    dm.train_set = TensorDataset(_asymmetric(256))
    assert isinstance(dm.train_dataloader().collate_fn, FlipCollate)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 2, 3) and y.shape == (64,)
    assert 0 < (x[:, 0, 0, 2] == 1).sum() < 64


def test_device_path_flips_batches():
    batches = DeviceBatches(_asymmetric(256), torch.arange(256), 64, hflip=True)
    x, _ = next(iter(batches))
    assert 0 < (x[:, 0, 0, 2] == 1).sum() < 64


def test_hflip_is_for_images():
    with pytest.raises(ValueError, match="no image_size"):
        GANDataModule(batch_size=8, data_shape=(2,), hflip=True)
