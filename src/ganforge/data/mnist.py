"""MNIST and Fashion-MNIST, read from their IDX files (LeCun et al. 1998; Xiao et al. 2017).

Files live where torchvision puts them, ``<root>/MNIST/raw/`` and
``<root>/FashionMNIST/raw/``, either gzipped as distributed or unpacked; the IDX
reader below takes both, so no checksum or torchvision cache is involved in reading.
The 28x28 images are resized to ``image_size`` (32 by default: DCGAN needs a power of two).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ganforge.data.arrays import ArrayImageDataModule

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """An unsigned-byte IDX array (the MNIST format), gzipped or raw."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path} is not an IDX file (only {len(data)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated or corrupt: header says {dims}, found {body.size} bytes")
    return body.reshape(dims)


class MNISTDataModule(ArrayImageDataModule):
    name = "mnist"
    folder = "MNIST/raw"
    source = "https://ossci-datasets.s3.amazonaws.com/mnist/ (the four *-ubyte.gz files)"
    torchvision_class = "MNIST"

    def _names(self) -> list[str]:
        splits = ("train", "test") if self.split == "all" else (self.split,)
        return [name for s in splits for name in _FILES[s]]

    def _path(self, name: str) -> Path | None:
        for candidate in (self.directory / name, self.directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def missing(self) -> list[str]:
        return [f"{name}.gz" for name in self._names() if self._path(name) is None]

    def fetch(self) -> None:
        import torchvision.datasets

        getattr(torchvision.datasets, self.torchvision_class)(str(self.root), train=True, download=True)

    def load(self) -> tuple[Tensor, Tensor]:
        names = self._names()
        images = [read_idx(self._path(n)) for n in names[0::2]]
        labels = [read_idx(self._path(n)) for n in names[1::2]]
        x = torch.from_numpy(np.concatenate(images)).unsqueeze(1)
        y = torch.from_numpy(np.concatenate(labels).astype(np.int64))
        if len(x) != len(y):
            raise ValueError(f"data={self.name}: {len(x)} images but {len(y)} labels in {self.directory}")
        return x, y


class FashionMNISTDataModule(MNISTDataModule):
    name = "fashion_mnist"
    folder = "FashionMNIST/raw"
    source = "https://github.com/zalandoresearch/fashion-mnist (the four *-ubyte.gz files)"
    torchvision_class = "FashionMNIST"
