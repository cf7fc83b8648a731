"""CIFAR-10 from fabricated pickle batches: read without torchvision's md5 checks."""

from __future__ import annotations

import pickle

import pytest
import torch

from ganforge.data.cifar import CIFAR10DataModule
from ganforge.data.download import DatasetNotFoundError


def test_cifar_reads_batches_whose_md5_is_not_the_official_one(tmp_path, fab):
    x, y = fab.write_cifar(tmp_path)
    dm = CIFAR10DataModule(root=tmp_path, download=True, batch_size=8)  # present: no download tried
    dm.prepare_data()
    dm.setup()
    assert torch.equal(dm.train_set.x, torch.from_numpy(x)) and dm.train_set.y.tolist() == y.tolist()
    assert (dm.image_size, dm.channels, dm.num_classes) == (32, 3, 10)
    xb, _ = next(iter(dm.train_dataloader()))
    assert xb.shape == (8, 3, 32, 32) and xb.min() >= -1 and xb.max() <= 1
    # planes are R, G, B: pixel (0, 0) of image 0 is bytes 0, 1024, 2048
    assert dm.train_set.x[0, :, 0, 0].tolist() == [x[0, 0, 0, 0], x[0, 1, 0, 0], x[0, 2, 0, 0]]


def test_cifar_test_split_resize_and_grayscale(cifar_root):
    dm = CIFAR10DataModule(root=cifar_root, download=False, split="test", image_size=64, channels=1)
    dm.setup()
    assert dm.train_set.x.shape == (10, 1, 64, 64)


def test_cifar_missing_batch_is_named(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"data_batch_3") as err:
        CIFAR10DataModule(root=cifar_root, download=False).prepare_data()
    assert "data_batch_1" not in str(err.value)
    assert "cifar-10-python.tar.gz" in str(err.value)


def test_cifar_corrupt_batch_is_a_clear_error(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps({"wrong": 1})[:-3])
    with pytest.raises(ValueError, match="data_batch_2 is not a CIFAR-10 python batch"):
        CIFAR10DataModule(root=cifar_root, download=False).setup()
