"""Precision/recall (k = 3) and density/coverage (k = 5): equal to Naeem et al.'s ``prdc``, hand cases, memorisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_stubs import ImageData, PixelFeatures, StubSampler

from ganforge.metrics.evaluator import FidelityEvaluator
from ganforge.metrics.manifold import (
    kth_neighbour_radii,
    memorisation_share,
    precision_recall_density_coverage,
)

prdc = pytest.importorskip("prdc")  # the reference implementation of Naeem et al. 2020


def features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * scale + shift


def reference(real: torch.Tensor, fake: torch.Tensor, pr_k: int = 3, dc_k: int = 5) -> dict:
    """prdc's numbers, each pair with its own k; float64 in, so its distances are float64 too."""
    r, f = real.double().numpy(), fake.double().numpy()
    pr, dc = prdc.compute_prdc(r, f, pr_k), prdc.compute_prdc(r, f, dc_k)
    return {
        "precision": pr["precision"],
        "recall": pr["recall"],
        **{k: dc[k] for k in ("density", "coverage")},
    }


@pytest.mark.parametrize(
    ("n_real", "n_fake", "shift", "scale"),
    [(300, 250, 0.3, 1.0), (200, 320, 0.0, 1.6), (257, 129, 1.0, 0.5)],
)
def test_equals_prdc_on_continuous_features(n_real, n_fake, shift, scale, capsys):
    real, fake = features(n_real, 12, seed=0), features(n_fake, 12, seed=1, shift=shift, scale=scale)
    got = precision_recall_density_coverage(real, fake, pr_k=3, dc_k=5, block=64)  # several row blocks
    want = reference(real, fake)
    assert 0 < got["precision"] < 1 and got["recall"] > 0 and got["coverage"] > 0  # not a trivial case
    for name, value in want.items():
        assert got[name] == pytest.approx(float(value), abs=1e-12), name


def test_blocks_do_not_change_the_numbers():
    real, fake = features(150, 5, seed=2), features(170, 5, seed=3, shift=0.2)
    whole = precision_recall_density_coverage(real, fake, block=10_000)
    assert precision_recall_density_coverage(real, fake, block=7) == whole


def test_identical_sets_are_fully_precise_recalled_and_covered():
    x = features(100, 8, seed=4)
    out = precision_recall_density_coverage(x, x.clone())
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0
    assert out["density"] > 0.5


def test_disjoint_far_apart_sets_score_zero():
    real, fake = features(80, 8, seed=5), features(90, 8, seed=6, shift=100.0)
    out = precision_recall_density_coverage(real, fake)
    assert out == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_radii_by_hand_exclude_the_point_itself():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert kth_neighbour_radii(x, 1).tolist() == [1.0, 1.0, 4.0, 16.0]  # squared distances
    assert kth_neighbour_radii(x, 2, block=3).tolist() == [9.0, 4.0, 9.0, 36.0]
    with pytest.raises(ValueError, match="k < N"):
        kth_neighbour_radii(x, 4)


def test_a_point_on_the_sphere_is_inside():
    # real 0 and 1 at distance 1: with k = 1 each ball has radius 1; a fake at 2 is on the
    # sphere of the ball around 1, so it is inside (<=), where prdc's strict < leaves it out
    real = torch.tensor([[0.0], [1.0]])
    fake = torch.tensor([[2.0], [2.5]])
    out = precision_recall_density_coverage(real, fake, pr_k=1, dc_k=1)
    assert out["precision"] == 0.5 and out["density"] == 0.5 and out["coverage"] == 0.5


def test_k_off_leaves_its_pair_out():
    real, fake = features(30, 4, seed=7), features(30, 4, seed=8)
    assert set(precision_recall_density_coverage(real, fake, pr_k=0, dc_k=5)) == {"density", "coverage"}
    assert set(precision_recall_density_coverage(real, fake, pr_k=3, dc_k=None)) == {"precision", "recall"}
    assert precision_recall_density_coverage(real, fake, pr_k=None, dc_k=0) == {}


def test_memorised_fakes_are_nearer_the_training_set():
    train, held_out = features(400, 10, seed=9), features(400, 10, seed=10)
    copies = train[torch.randperm(400, generator=torch.Generator().manual_seed(0))[:300]]
    assert memorisation_share(copies, train, held_out) == 1.0


def test_fakes_like_held_out_data_are_nearer_either_set_half_the_time():
    train, held_out, fake = (
        features(1500, 10, seed=11),
        features(1500, 10, seed=12),
        features(2000, 10, seed=13),
    )
    assert memorisation_share(fake, train, held_out) == pytest.approx(0.5, abs=0.04)


def test_the_larger_set_is_subsampled_to_the_smaller_ones_size():
    # without subsampling, 8x as many training points would be nearer most fakes
    train, held_out, fake = features(4000, 6, seed=14), features(500, 6, seed=15), features(2000, 6, seed=16)
    share = memorisation_share(fake, train, held_out, seed=3)
    assert share == pytest.approx(0.5, abs=0.05)
    assert memorisation_share(fake, train, held_out, seed=3) == share  # seeded
    assert memorisation_share(fake, held_out, train, seed=3) == pytest.approx(1 - share, abs=0.06)


# ----------------------------------------------------------------- through the evaluator
def small_evaluator(tmp_path, **kwargs) -> tuple[FidelityEvaluator, torch.Tensor]:
    images = torch.rand(120, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    options = {"num_fake": 120, "batch_size": 32, "kid_subsets": 2, "kid_subset_size": 50, **kwargs}
    ev = FidelityEvaluator(PixelFeatures(16), cache_dir=tmp_path, **options)
    ev.prepare(ImageData(images), "cpu")
    return ev, images


def test_the_evaluator_gives_them_on_kids_features(tmp_path):
    ev, images = small_evaluator(tmp_path, kid_max_real=100)
    out = ev.evaluate(StubSampler(images, noise=0.2))
    # the same numbers from KID's real features and the generated images drawn again by hand
    g, stub = torch.Generator().manual_seed(0), StubSampler(images, noise=0.2)
    fake = torch.cat([stub.sample(n, generator=g) for n in (32, 32, 32, 24)])
    fake_features = (fake * 127.5 + 128).clamp(0, 255).to(torch.uint8).float().flatten(1)
    want = precision_recall_density_coverage(ev.real.kid_features, fake_features, 3, 5)
    assert {k: out[k] for k in want} == want
    p = ev.protocol()
    assert p["pr_k"] == 3 and p["dc_k"] == 5 and p["prdc_n_real"] == 100 and "<=" in p["prdc_ball"]


def test_the_reals_radii_are_kept_between_evaluations_and_dropped_with_new_real_features(tmp_path):
    ev, images = small_evaluator(tmp_path, kid_max_real=100)
    first = ev.evaluate(StubSampler(images, noise=0.2))
    kept = ev.scores.kid.real_radii
    assert kept is not None
    assert ev.evaluate(StubSampler(images, noise=0.2)) == first  # the second evaluation reuses them
    assert ev.scores.kid.real_radii is kept
    ev.prepare(ImageData(images.flip(0)), "cpu")  # other real features (another first 100)
    assert ev.scores.kid.real_radii is None
    again = ev.evaluate(StubSampler(images, noise=0.2))
    fresh, _ = small_evaluator(tmp_path / "fresh", kid_max_real=100)
    fresh.prepare(ImageData(images.flip(0)), "cpu")
    assert again == fresh.evaluate(StubSampler(images, noise=0.2))


def test_the_real_set_as_fakes_is_fully_precise_and_covered(tmp_path):
    ev, images = small_evaluator(tmp_path)
    out = ev.evaluate(StubSampler(images, in_order=True))
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0


def test_options_turn_them_off_and_check_k(tmp_path):
    ev, images = small_evaluator(tmp_path, pr_k=0, dc_k=None)
    out = ev.evaluate(StubSampler(images, noise=0.1))
    assert not {"precision", "recall", "density", "coverage"} & set(out)
    assert ev.protocol()["pr_k"] is None
    with pytest.raises(ValueError, match=r"below metrics\.num_fake"):
        FidelityEvaluator(PixelFeatures(16), num_fake=5, dc_k=5)
    with pytest.raises(ValueError, match="real features"):
        small_evaluator(tmp_path, kid_max_real=4)


def test_numpy_arrays_of_prdc_agree_with_a_direct_count():
    # prdc itself against a direct NumPy count with closed balls (continuous data: no ties)
    real, fake = (
        features(60, 3, seed=17).double().numpy(),
        features(50, 3, seed=18, shift=0.5).double().numpy(),
    )
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    radius = np.sort(d_rr, axis=1)[:, 3]  # column 0 is the point itself
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=-1)
    precision = (d_rf <= radius[:, None]).any(0).mean()
    got = precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), 3, None)
    assert got["precision"] == pytest.approx(precision, abs=1e-12)
