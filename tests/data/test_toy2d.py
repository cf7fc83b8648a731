"""2-D Gaussian mixtures: where the modes are, and how the samples fall around them."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from ganforge.data.toy2d import Toy2DDataModule, grid_modes, ring_modes


def nearest(x, modes):
    dist, k = torch.cdist(x, modes).min(1)
    return dist, k


# ----------------------------------------------------------------------------- modes
def test_ring_modes_lie_on_the_unit_circle_at_equal_angles():
    modes = ring_modes(8, radius=1.0).double()
    assert modes.shape == (8, 2)
    assert modes.norm(dim=1).tolist() == pytest.approx([1.0] * 8, abs=1e-6)
    # neighbours 45 degrees apart: chord 2 sin(pi/8)
    chords = (modes - modes.roll(1, 0)).norm(dim=1)
    assert chords.tolist() == pytest.approx([2 * math.sin(math.pi / 8)] * 8, abs=1e-6)
    assert modes[0].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    assert modes[2].tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_ring_radius_scales_the_modes():
    assert ring_modes(8, radius=2.0).norm(dim=1).tolist() == pytest.approx([2.0] * 8, abs=1e-6)


def test_grid_modes_are_the_5x5_lattice():
    modes = grid_modes(5, spacing=2.0)
    expected = set(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert len(modes) == 25
    assert {tuple(m) for m in modes.tolist()} == expected


@pytest.mark.parametrize("kind", ["ring", "grid"])
def test_datamodule_declares_points(kind):
    dm = Toy2DDataModule(kind=kind)
    assert dm.image_size is None and dm.channels is None
    assert dm.num_classes == 0
    assert tuple(dm.data_shape) == (2,)
    assert len(dm.modes) == {"ring": 8, "grid": 25}[kind]


# ----------------------------------------------------------------------------- samples
@pytest.mark.parametrize(("kind", "std", "n"), [("ring", 0.01, 16_000), ("grid", 0.05, 25_000)])
def test_samples_sit_on_the_modes_in_equal_shares(kind, std, n):
    dm = Toy2DDataModule(kind=kind, std=std)
    dm.setup("fit")
    g = torch.Generator().manual_seed(1)
    x, k = dm.train_set.sample(n, generator=g)
    assert x.shape == (n, 2)
    dist, near = nearest(x, dm.modes)
    # 2-D Gaussian: P(r > 6 std) = exp(-18) ~ 1.5e-8
    assert dist.max().item() < 6 * std
    assert torch.equal(near, k)  # the label is the mode that drew the sample
    # spread around a mode: E r^2 = 2 std^2
    assert dist.pow(2).mean().item() == pytest.approx(2 * std**2, rel=0.05)
    counts = torch.bincount(near, minlength=len(dm.modes)).double()
    expected = n / len(dm.modes)
    # binomial sd ~ sqrt(expected): 2000 -> 42, 1000 -> 31; allow about 5 sd
    assert (counts - expected).abs().max().item() < 5 * math.sqrt(expected)


def test_train_dataloader_serves_batches_of_points():
    dm = Toy2DDataModule(kind="ring", batch_size=128, samples_per_epoch=1024)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == 1024 // 128
    for x, y in batches[:2]:
        assert x.shape == (128, 2) and y.shape == (128,)
        dist = (x - dm.modes[y]).norm(dim=1)
        assert dist.max().item() < 6 * dm.std
    # fresh draws: no two batches are the same
    assert not torch.equal(batches[0][0], batches[1][0])


def test_loader_batches_hold_several_steps_and_an_epoch_holds_samples_per_epoch():
    dm = Toy2DDataModule(kind="grid", batch_size=64, steps_per_batch=4, samples_per_epoch=64 * 4 * 5 + 100)
    batches = list(dm.train_dataloader())
    assert len(dm.train_dataloader()) == len(batches) == 5  # the 100 left over make no batch
    assert {tuple(x.shape) for x, _ in batches} == {(256, 2)}


def test_ranks_share_the_epoch_out():
    dm = Toy2DDataModule(kind="ring", batch_size=32, steps_per_batch=2, samples_per_epoch=64 * 10)
    dm.trainer = SimpleNamespace(world_size=2)  # what a 2-process DDP trainer tells the datamodule
    assert len(dm.train_dataloader()) == len(list(dm.train_dataloader())) == 5


def test_workers_share_the_epoch_out():
    dm = Toy2DDataModule(kind="ring", batch_size=32, samples_per_epoch=32 * 7, num_workers=2)
    loader = dm.train_dataloader()
    try:
        batches = list(loader)
    finally:
        del loader  # persistent workers stop with their loader
    assert len(batches) == 7
    assert len({x[0, 0].item() for x, _ in batches}) == 7  # each worker draws its own stream


def test_an_epoch_shorter_than_a_loader_batch_is_refused():
    dm = Toy2DDataModule(kind="ring", batch_size=256, steps_per_batch=8, samples_per_epoch=1000)
    with pytest.raises(ValueError, match=r"samples_per_epoch=1000 is less than one loader batch .* 2048"):
        dm.train_dataloader()


def test_on_device_is_refused_for_draws_made_on_the_fly():
    dm = Toy2DDataModule(kind="ring", on_device=True)
    with pytest.raises(ValueError, match=r"on_device=true needs the training set in memory.*on_device=false"):
        dm.train_dataloader()


def test_real_samples_are_reproducible():
    a = Toy2DDataModule(kind="grid").real_samples(500)
    b = Toy2DDataModule(kind="grid").real_samples(500)
    dm = Toy2DDataModule(kind="grid")
    assert a.shape == (500, 2)
    assert torch.equal(a, b)
    assert torch.equal(dm.real_samples(500), dm.real_samples(500))
    # and they do not disturb the global random stream
    torch.manual_seed(3)
    before = torch.rand(1)
    torch.manual_seed(3)
    dm.real_samples(100)
    assert torch.equal(torch.rand(1), before)


def test_real_samples_default_to_the_2500_of_the_coverage_protocol():
    dm = Toy2DDataModule(kind="ring")
    x = dm.real_samples()
    assert x.shape == (2500, 2)
    # a draw of the mixture (what reproducibility alone would not tell from a constant):
    # every sample near a mode, spread around it (E r^2 = 2 std^2), every mode with about
    # 2500 / 8 of them
    _, near = nearest(x, dm.modes)
    dist = (x - dm.modes[near]).norm(dim=1)
    assert dist.max().item() < 6 * dm.std
    assert dist.pow(2).mean().item() == pytest.approx(2 * dm.std**2, rel=0.1)
    counts = torch.bincount(near, minlength=8).double()
    assert (counts - 2500 / 8).abs().max().item() < 5 * math.sqrt(2500 / 8)


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("field", ["image_size", "channels"])
def test_image_settings_on_points_are_refused(field):
    with pytest.raises(ValueError, match=r"data=ring is 2-D points: image_size and channels must be null"):
        Toy2DDataModule(kind="ring", **{field: 32})


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match=r"'ring' or 'grid', got 'spiral'"):
        Toy2DDataModule(kind="spiral")


@pytest.mark.parametrize("std", [0.0, -0.1])
def test_non_positive_std_is_refused(std):
    with pytest.raises(ValueError, match=r"data.std must be positive"):
        Toy2DDataModule(kind="grid", std=std)


def test_non_positive_batch_size_is_refused():
    with pytest.raises(ValueError, match=r"data.batch_size must be a positive integer, got 0"):
        Toy2DDataModule(kind="ring", batch_size=0)
