"""data.subset: a seeded part of any image set, seen alike by training, metrics and fingerprints."""

from __future__ import annotations

import logging

import pytest
import torch
from cli import TINY_DCGAN

from ganforge.data.cifar import CIFAR10DataModule
from ganforge.data.digits import DigitsDataModule, load_digits_tensor
from ganforge.data.folder import ImageFolderDataModule
from ganforge.data.mnist import MNISTDataModule
from ganforge.data.subset import held_out_indices, subset_indices, subset_size
from ganforge.data.toy2d import Toy2DDataModule
from ganforge.errors import ConfigError
from ganforge.pipeline import build, train

N_DIGITS = 1797


# ----------------------------------------------------------------------------- the indices
def test_size_of_a_fraction_and_of_a_count():
    assert len(subset_indices(N_DIGITS, 0.1, 0)) == subset_size(N_DIGITS, 0.1) == 180
    assert len(subset_indices(N_DIGITS, 500, 0)) == 500
    assert len(subset_indices(N_DIGITS, 500.0, 0)) == 500  # an integral float is a count
    assert len(subset_indices(N_DIGITS, 1.0, 0)) == N_DIGITS
    assert subset_size(N_DIGITS, None) == N_DIGITS


def test_deterministic_for_a_seed_and_different_for_another():
    a = subset_indices(N_DIGITS, 0.1, seed=0)
    assert torch.equal(a, subset_indices(N_DIGITS, 0.1, seed=0))
    assert a.dtype == torch.long and len(a.unique()) == len(a)
    assert set(a.tolist()) != set(subset_indices(N_DIGITS, 0.1, seed=1).tolist())


def test_subsets_nest_and_the_held_out_end_is_disjoint():
    small, large = subset_indices(N_DIGITS, 100, 3), subset_indices(N_DIGITS, 0.5, 3)
    assert set(small.tolist()) <= set(large.tolist())
    held = held_out_indices(N_DIGITS, N_DIGITS - len(large), 3)
    assert not set(held.tolist()) & set(large.tolist())
    assert len(held) + len(large) == N_DIGITS


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (0, r"data\.subset=0: .*fraction in \(0, 1\] or a count"),
        (-5, r"data\.subset=-5"),
        (-0.5, r"data\.subset=-0.5"),
        (1.5, r"data\.subset=1.5: a fraction must be at most 1 and a count a whole number"),
        (True, r"data\.subset=True"),
        ("10%", r"data\.subset='10%'"),
        (float("nan"), r"data\.subset=nan"),
        (5000, r"data\.subset=5000 asks for more images than the training set holds \(1797\)"),
    ],
)
def test_bad_values_name_data_subset_and_the_fix(value, match):
    with pytest.raises(ValueError, match=match):
        subset_size(N_DIGITS, value)


# ----------------------------------------------------------------------------- datamodules
def digits(**kwargs) -> DigitsDataModule:
    kwargs.setdefault("batch_size", 16)
    return DigitsDataModule(image_size=8, **kwargs)


def test_digits_subset_feeds_training_metrics_and_labels_alike():
    full, part = digits(), digits(subset=0.1)
    part.setup()
    assert len(part.train_set) == 180 and len(part.real_samples()) == 180
    idx = subset_indices(N_DIGITS, 0.1, 0).sort().values
    x, y = load_digits_tensor(8)
    torch.testing.assert_close(part.real_samples(), x[idx])
    assert torch.equal(part.train_set.y, y[idx])  # labels follow their images
    assert part.subset_description == {"subset": 0.1, "subset_seed": 0, "n": 180, "of": N_DIGITS}
    assert full.subset_description is None
    xb, _ = next(iter(part.train_dataloader()))
    assert xb.shape == (16, 1, 8, 8)


def test_fingerprint_follows_the_subset_and_its_seed():
    prints = {digits(subset=s, subset_seed=k).fingerprint() for s, k in ((None, 0), (0.1, 0), (0.1, 1))}
    assert len(prints) == 3
    assert digits(subset=0.1).fingerprint() == digits(subset=180).fingerprint()  # same images
    assert digits(subset=1.0).fingerprint() == digits().fingerprint()  # all of them, in order


def test_array_sets_take_the_subset_before_serving(tmp_path, fab):
    fab.write_mnist(tmp_path, n_train=40)
    fab.write_cifar(tmp_path)
    for cls in (MNISTDataModule, CIFAR10DataModule):
        full = cls(root=tmp_path, download=False, image_size=8, batch_size=4)
        part = cls(root=tmp_path, download=False, image_size=8, batch_size=4, subset=10, subset_seed=2)
        full.setup()
        idx = subset_indices(len(full.train_set), 10, 2).sort().values
        assert torch.equal(part.real_samples(), full.real_samples()[idx])
        assert torch.equal(part.train_set.y, full.train_set.y[idx])
        assert part.fingerprint() != full.fingerprint()
        assert part.subset_description["n"] == 10 and part.subset_description["of"] == len(full.train_set)


@pytest.mark.parametrize("cache", [True, False])
def test_folder_subset_picks_files_before_reading_them(cache, image_tree, caplog):
    kwargs = dict(image_size=8, batch_size=2, labels=True, num_classes=3, cache=cache, verify=False)
    full = ImageFolderDataModule(image_tree, **kwargs)
    part = ImageFolderDataModule(image_tree, subset=5, **kwargs)
    with caplog.at_level(logging.WARNING, logger="ganforge"):
        full.setup()
        part.setup()
    found = 11  # every image file found, readable or not
    idx = subset_indices(found, 5, 0).sort().values.tolist()
    if not cache:  # lazily decoded: the paths are the 5 chosen files, labels alongside
        assert part.train_set.paths == [full.train_set.paths[i] for i in idx]
        assert part.train_set.targets.tolist() == [full.train_set.targets[i].item() for i in idx]
    assert part.subset_description["of"] == found and part.subset_description["n"] <= 5
    assert part.fingerprint() != full.fingerprint()


def test_toys_refuse_a_subset():
    with pytest.raises(ValueError, match=r"data=ring draws new points .* drop data\.subset"):
        Toy2DDataModule(kind="ring", subset=0.5)


def test_a_subset_smaller_than_one_batch_is_refused():
    with pytest.raises(ValueError, match=r"data\.subset=0.01 keeps 18 of 1797 images, fewer than one batch"):
        digits(subset=0.01, batch_size=64).setup()


def test_bad_subset_stops_the_run_before_training(compose):
    with pytest.raises(ConfigError, match=r"data\.subset=0"):
        build(compose(["data.subset=0"]))
    with pytest.raises(ConfigError, match=r"data\.subset=2.5"):
        build(compose(["data.subset=2.5"]))


def test_every_image_data_config_has_the_subset_keys(compose, tmp_path):
    for name in ("digits", "mnist", "fashion_mnist", "cifar10", "celeba", "folder"):
        cfg = compose([f"data={name}", f"paths.data_dir={tmp_path}"])
        assert cfg.data.subset is None and cfg.data.subset_seed == 0, name


def test_training_on_a_tenth_of_digits_through_the_pipeline(compose):
    metrics = ["metrics.num_fake=64", "metrics.kid_subsets=2", "metrics.kid_subset_size=32"]
    cfg = compose(
        [
            *TINY_DCGAN,
            "data.subset=0.1",
            "data.batch_size=16",
            "trainer.limit_train_batches=1.0",
            "trainer.detect_anomaly=false",
            "callbacks=none",
            "+callbacks.metrics=${metrics}",  # the default metrics=auto: digits, on the subset
            *metrics,
        ]
    )
    _, objects = train(cfg)
    dm, (callback,) = objects["datamodule"], objects["callbacks"]
    assert dm.subset_description == {"subset": 0.1, "subset_seed": 0, "n": 180, "of": N_DIGITS}
    assert objects["model"].g_steps == 180 // 16  # a whole epoch of the subset, not of 1,797 digits
    assert callback.evaluator.real.count == 180  # real statistics of the subset only
    assert callback.evaluator.protocol()["subset"] == dm.subset_description  # in metrics.jsonl
