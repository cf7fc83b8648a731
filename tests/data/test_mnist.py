"""MNIST and Fashion-MNIST from fabricated IDX files: reading, sizes, labels, missing files."""

from __future__ import annotations

import gzip
from urllib.error import URLError

import numpy as np
import pytest
import torch

from ganforge.data.download import DatasetNotFoundError
from ganforge.data.mnist import FashionMNISTDataModule, MNISTDataModule, read_idx


def test_read_idx_reads_gzipped_and_raw_files(tmp_path, fab):
    x, _ = fab.mnist_like(5, 0)
    gz = fab.write_idx(tmp_path / "a-idx3-ubyte", x, gz=True)
    raw = fab.write_idx(tmp_path / "b-idx3-ubyte", x, gz=False)
    with gzip.open(gz) as f:
        assert gz.suffix == ".gz" and f.read(4) == b"\x00\x00\x08\x03"
    np.testing.assert_array_equal(read_idx(gz), x)
    np.testing.assert_array_equal(read_idx(raw), x)


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path, fab):
    path = fab.write_idx(tmp_path / "x-idx3-ubyte", fab.mnist_like(4, 0)[0], gz=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        read_idx(tmp_path / "junk")


def test_mnist_serves_resized_images_in_range_with_labels(mnist_root):
    dm = MNISTDataModule(root=mnist_root, download=False, image_size=32, batch_size=8)
    dm.prepare_data()
    dm.setup("fit")
    x, y = dm.train_set.x, dm.train_set.y
    assert x.dtype == torch.uint8 and x.shape == (40, 1, 32, 32)  # stored compactly
    assert y.dtype == torch.long and y.tolist() == [i % 10 for i in range(40)]
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (8, 1, 32, 32) and xb.dtype == torch.float32
    assert xb.min() >= -1 and xb.max() <= 1 and yb.dtype == torch.long
    real = dm.real_samples(5)
    assert real.shape == (5, 1, 32, 32) and real.max() == 1.0  # 255 -> exactly 1
    assert (dm.image_size, dm.channels, dm.num_classes, dm.data_shape) == (32, 1, 10, (1, 32, 32))


def test_mnist_splits_and_native_size(mnist_root):
    test = MNISTDataModule(root=mnist_root, download=False, split="test", image_size=28)
    test.setup()
    assert test.train_set.x.shape == (20, 1, 28, 28)  # raw (un-gzipped) files
    raw = np.frombuffer((mnist_root / "MNIST/raw/t10k-images-idx3-ubyte").read_bytes()[16:], np.uint8)
    assert torch.equal(test.train_set.x.flatten(), torch.from_numpy(raw.copy()))
    both = MNISTDataModule(root=mnist_root, download=False, split="all", image_size=16)
    both.setup()
    assert len(both.train_set) == 60


def test_mnist_as_three_channels(mnist_root):
    dm = MNISTDataModule(root=mnist_root, download=False, channels=3, image_size=16)
    dm.setup()
    x = dm.train_set.x
    assert x.shape[1:] == (3, 16, 16) and torch.equal(x[:, 0], x[:, 2])


def test_fashion_mnist_reads_its_own_folder(tmp_path, fab):
    fab.write_mnist(tmp_path, folder="FashionMNIST")
    dm = FashionMNISTDataModule(root=tmp_path, download=False)
    dm.setup()
    assert dm.train_set.x.shape == (40, 1, 32, 32)
    with pytest.raises(DatasetNotFoundError, match="MNIST/raw"):
        MNISTDataModule(root=tmp_path, download=False).setup()


def test_missing_files_name_dataset_files_and_directory(tmp_path):
    dm = MNISTDataModule(root=tmp_path / "nowhere", download=False)
    with pytest.raises(DatasetNotFoundError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert "data=mnist" in msg and "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in msg and "data.download=false" in msg
    with pytest.raises(DatasetNotFoundError):
        dm.setup("fit")  # without prepare_data as well


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    def no_network(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried ... got:\n<urlopen error>")

    monkeypatch.setattr(MNISTDataModule, "fetch", no_network)
    dm = MNISTDataModule(root=tmp_path, download=True)
    with pytest.raises(DatasetNotFoundError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert (
        "download failed (RuntimeError: Error downloading train-images-idx3-ubyte.gz: ... <urlopen error>)"
        in msg
    )
    assert "ossci-datasets" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no urllib traceback chain


def test_download_is_skipped_when_files_are_there(mnist_root, monkeypatch):
    fetched = []
    monkeypatch.setattr(MNISTDataModule, "fetch", lambda self: fetched.append(self))
    MNISTDataModule(root=mnist_root, download=True).prepare_data()
    assert fetched == []  # files present: no download tried
    with pytest.raises(DatasetNotFoundError, match="still missing"):  # the stub fetched nothing
        MNISTDataModule(root=mnist_root / "empty", download=True).prepare_data()
    assert len(fetched) == 1  # the same call does try a download when the files are missing


def test_real_download_path_without_network_fails_cleanly(tmp_path, monkeypatch):
    """torchvision's own downloader, with every URL refused: still one short error."""
    import torchvision.datasets.utils as tv_utils

    def refuse(*args, **kwargs):
        raise URLError("network is unreachable")

    monkeypatch.setattr(tv_utils, "_urlretrieve", refuse)
    with pytest.raises(DatasetNotFoundError, match="download failed"):
        MNISTDataModule(root=tmp_path, download=True).prepare_data()


def test_num_classes_must_match_the_labels_present(tmp_path, fab):
    fab.write_mnist(tmp_path, classes=3)
    with pytest.raises(ValueError, match=r"num_classes=10, but data=mnist has only 3 of them present"):
        MNISTDataModule(root=tmp_path, download=False).setup()
    MNISTDataModule(root=tmp_path, download=False, num_classes=0).setup()  # unconditional: fine
    with pytest.raises(ValueError, match="has 10 classes"):
        MNISTDataModule(root=tmp_path, num_classes=5)


def test_fingerprint_follows_content(tmp_path, fab):
    fab.write_mnist(tmp_path / "a")
    fab.write_mnist(tmp_path / "b")
    fa = MNISTDataModule(root=tmp_path / "a", download=False).fingerprint()
    assert fa == MNISTDataModule(root=tmp_path / "b", download=False).fingerprint()
    assert fa != MNISTDataModule(root=tmp_path / "a", download=False, image_size=16).fingerprint()
    x, _ = fab.mnist_like(40, 0)
    x[7, 0, 0] ^= 1
    fab.write_idx(tmp_path / "b" / "MNIST" / "raw" / "train-images-idx3-ubyte", x, gz=True)
    assert fa != MNISTDataModule(root=tmp_path / "b", download=False).fingerprint()
