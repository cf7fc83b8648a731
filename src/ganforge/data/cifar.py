"""CIFAR-10 (Krizhevsky 2009), read from the python pickle batches.

``<root>/cifar-10-batches-py/`` holds ``data_batch_1..5`` (50,000 training images)
and ``test_batch``. The batches are unpickled here rather than through torchvision's
class, which insists on the official md5 of every file even for reading.
"""

from __future__ import annotations

import pickle

import numpy as np
import torch
from torch import Tensor

from ganforge.data.arrays import ArrayImageDataModule

_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class CIFAR10DataModule(ArrayImageDataModule):
    name = "cifar10"
    folder = "cifar-10-batches-py"
    source = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract it)"
    native_channels = 3

    def _names(self) -> list[str]:
        splits = ("train", "test") if self.split == "all" else (self.split,)
        return [name for s in splits for name in _BATCHES[s]]

    def missing(self) -> list[str]:
        return [name for name in self._names() if not (self.directory / name).is_file()]

    def fetch(self) -> None:
        import torchvision.datasets

        torchvision.datasets.CIFAR10(str(self.root), train=True, download=True)

    def load(self) -> tuple[Tensor, Tensor]:
        images, labels = [], []
        for name in self._names():
            path = self.directory / name
            try:
                with open(path, "rb") as f:
                    entry = pickle.load(f, encoding="latin1")
                data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                labels.append(np.asarray(entry["labels"], dtype=np.int64))
            except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
                raise ValueError(f"data=cifar10: {path} is not a CIFAR-10 python batch ({exc})") from None
            images.append(data)
        return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))
