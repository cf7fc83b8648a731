"""The embedded scikit-learn digits: what the datamodule serves and what it refuses."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from ganforge.data.digits import DigitsDataModule

N_DIGITS = 1797


@pytest.fixture(scope="module")
def raw_digits():
    digits = load_digits()
    return torch.as_tensor(digits.images, dtype=torch.float32), torch.as_tensor(digits.target)


@pytest.mark.parametrize("size", [8, 16, 32])
def test_images_labels_and_range(size, raw_digits):
    dm = DigitsDataModule(image_size=size, batch_size=32)
    x = dm.real_samples()
    assert x.shape == (N_DIGITS, 1, size, size)
    assert x.dtype == torch.float32
    assert x.min().item() == pytest.approx(-1.0) and x.max().item() == pytest.approx(1.0)
    labels = dm.train_set.y
    assert labels.shape == (N_DIGITS,)
    assert sorted(labels.unique().tolist()) == list(range(10))
    assert torch.equal(labels, raw_digits[1])
    assert (dm.image_size, dm.channels, dm.num_classes) == (size, 1, 10)
    assert tuple(dm.data_shape) == (1, size, size)


def test_native_size_is_the_raw_pixels_mapped_to_minus_one_one(raw_digits):
    # pixel values 0..16 map linearly: 0 -> -1, 8 -> 0, 16 -> 1
    x = DigitsDataModule(image_size=8).real_samples()
    assert torch.allclose(x[:, 0], raw_digits[0] / 8.0 - 1.0, atol=1e-6)


def test_resized_images_keep_the_mean_brightness():
    # bilinear resizing only redistributes ink: the mean pixel value hardly moves
    small = DigitsDataModule(image_size=8).real_samples()
    large = DigitsDataModule(image_size=32).real_samples()
    assert large.mean().item() == pytest.approx(small.mean().item(), abs=0.05)


def test_train_dataloader_batches():
    dm = DigitsDataModule(image_size=16, batch_size=50)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == N_DIGITS // 50  # the short last batch is dropped
    for x, y in batches[:3]:
        assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
        assert x.shape == (50, 1, 16, 16)
        assert y.shape == (50,) and y.dtype == torch.long
        assert x.min() >= -1.0 and x.max() <= 1.0
        assert ((y >= 0) & (y <= 9)).all()


def test_batches_pair_each_image_with_its_label():
    dm = DigitsDataModule(image_size=8, batch_size=64)
    images, labels = dm.real_samples(), dm.train_set.y
    x, y = next(iter(dm.train_dataloader()))
    # find every served image in the dataset; its stored label must be the served one
    matches = (x.flatten(1)[:, None, :] == images.flatten(1)[None]).all(-1)
    assert matches.any(1).all()
    for row, label in zip(matches, y):
        assert label in labels[row]


def test_shuffled_epochs():
    dm = DigitsDataModule(image_size=8, batch_size=64)
    first = next(iter(dm.train_dataloader()))[0]
    assert not torch.equal(first, dm.real_samples(64))


def test_real_samples_prefix():
    dm = DigitsDataModule(image_size=8)
    assert torch.equal(dm.real_samples(10), dm.real_samples()[:10])


@pytest.mark.parametrize("channels", [3, 0])
def test_colour_channels_are_refused(channels):
    with pytest.raises(ValueError, match=rf"grayscale: data.channels must be 1, got {channels}"):
        DigitsDataModule(channels=channels)


@pytest.mark.parametrize("num_classes", [5, 100])
def test_wrong_class_count_is_refused(num_classes):
    with pytest.raises(ValueError, match=rf"data.num_classes must be 10 \(or 0\), got {num_classes}"):
        DigitsDataModule(num_classes=num_classes)


def test_unconditional_use_is_allowed():
    assert DigitsDataModule(num_classes=0).num_classes == 0


@pytest.mark.parametrize("batch_size", [0, -8])
def test_non_positive_batch_size_is_refused(batch_size):
    with pytest.raises(ValueError, match=rf"data.batch_size must be a positive integer, got {batch_size}"):
        DigitsDataModule(batch_size=batch_size)


def test_batch_larger_than_the_dataset_is_refused():
    dm = DigitsDataModule(image_size=8, batch_size=N_DIGITS + 1)
    with pytest.raises(ValueError, match=r"1798 is larger than the training set \(1797"):
        dm.train_dataloader()


@pytest.mark.parametrize("size", [4, 7])
def test_image_size_below_the_native_8_is_refused(size):
    with pytest.raises(ValueError, match=rf"image_size must be an integer >= 8 for digits, got {size}"):
        DigitsDataModule(image_size=size)
