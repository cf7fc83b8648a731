"""Conditional models: intra-class FID against SciPy per class, class accuracy, the draw, the per-class cache."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.linalg
import torch
from metrics_stubs import Counting, ImageData, LabelledDigits, LabelledImageData, PixelFeatures, StubSampler

from ganforge.data.digits import DigitsDataModule
from ganforge.losses import VanillaLoss
from ganforge.metrics.conditional import class_sums
from ganforge.metrics.evaluator import FidelityEvaluator, _draw
from ganforge.metrics.protocol import to_extractor_input
from ganforge.metrics.real_stats import cache_file, load, make_key
from ganforge.modules.gan import GAN
from ganforge.nets import cdcgan


def frechet_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the matrix root by scipy.linalg.sqrtm."""
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root))


@pytest.fixture(scope="module")
def digits_data() -> DigitsDataModule:
    dm = DigitsDataModule(image_size=32)
    dm.setup("fit")
    return dm


def evaluator(extractor, tmp_path, **kwargs) -> FidelityEvaluator:
    options = {"num_fake": 1000, "batch_size": 250, "kid_subsets": 2, "kid_subset_size": 100, **kwargs}
    return FidelityEvaluator(extractor, cache_dir=tmp_path, **options)


@torch.no_grad()
def features_of(extractor, images: torch.Tensor) -> np.ndarray:
    return extractor(to_extractor_input(images, 1)).double().numpy()


def test_intra_class_fid_equals_scipy_class_by_class(digits_data, digits_extractor, tmp_path):
    ev = evaluator(digits_extractor, tmp_path)
    ev.prepare(digits_data, "cpu", num_classes=10)
    x, y = digits_data.real_samples(), digits_data.train_set.y
    sampler = LabelledDigits(x, y, noise=0.15)
    out = ev.evaluate(sampler)
    fake = torch.cat([images for images, _ in sampler.drawn])
    labels = torch.cat([labels for _, labels in sampler.drawn])
    real_f, fake_f = features_of(digits_extractor, x), features_of(digits_extractor, fake)
    want = [frechet_scipy(real_f[(y == c).numpy()], fake_f[(labels == c).numpy()]) for c in range(10)]
    got = ev.per_class["intra_fid"]
    assert got == pytest.approx(want, rel=1e-4)
    assert out["intra_fid"] == pytest.approx(np.mean(want), rel=1e-4)
    assert ev.per_class["n_fake"] == torch.bincount(labels, minlength=10).tolist()
    assert sum(ev.per_class["n_fake"]) == 1000 and sum(ev.per_class["n_real"]) == len(x)
    assert all(v > 0 for v in got)
    assert ev.details() == {"per_class": ev.per_class}
    p = ev.protocol()
    assert p["num_classes"] == 10 and p["class_accuracy_classifier"] == "digits_cnn"


def test_class_accuracy_of_the_right_digits_and_of_random_ones(digits_data, digits_extractor, tmp_path):
    ev = evaluator(digits_extractor, tmp_path)
    ev.prepare(digits_data, "cpu", num_classes=10)
    x, y = digits_data.real_samples(), digits_data.train_set.y
    right = ev.evaluate(LabelledDigits(x, y))
    assert right["class_accuracy"] > 0.97  # the classifier's 99.6 % on held-out digits; these it trained on
    random = ev.evaluate(LabelledDigits(x, y, follow_labels=False))
    assert 0.05 < random["class_accuracy"] < 0.16  # one in ten by chance
    assert random["intra_fid"] > 10 * right["intra_fid"]  # each class against the wrong digits' images


def tiny_cgan(image_size: int = 32) -> GAN:
    torch.manual_seed(0)
    adam = functools.partial(torch.optim.Adam, lr=2e-4)
    return GAN(
        generator=cdcgan.Generator(image_size, 1, 10, latent_dim=16, width=8),
        discriminator=cdcgan.Discriminator(image_size, 1, 10, width=8),
        g_optimizer=adam,
        d_optimizer=adam,
        loss=VanillaLoss(),
    )


def test_a_gans_images_are_those_of_its_own_unlabelled_draw():
    gan = tiny_cgan()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for n in (7, 5):
        images, labels = _draw(gan, n, g1, 10)
        assert torch.equal(images, gan.sample(n, labels=None, generator=g2))
        assert labels.shape == (n,)
    assert torch.equal(g1.get_state(), g2.get_state())  # the stream goes on where it would have


def test_fid_is_kid_of_a_conditional_gan_are_unchanged(digits_data, digits_extractor, tmp_path):
    gan = tiny_cgan()
    ev = evaluator(digits_extractor, tmp_path, num_fake=300, batch_size=128)
    ev.prepare(digits_data, "cpu", num_classes=10)
    out = ev.evaluate(gan)
    # the draw as it was: sample(n, labels=None, generator=g), unlabelled updates
    ev.reset_fake()
    g = torch.Generator().manual_seed(ev.seed)
    for n in (128, 128, 44):
        ev.update(gan.sample(n, labels=None, generator=g))
    before = ev.compute()
    assert {"intra_fid", "class_accuracy"} <= set(out)
    assert {k: out[k] for k in before} == before  # fid, is, kid, precision, ... bit for bit


def test_per_class_real_sums_are_cached_under_a_key_of_their_own(tmp_path):
    g = torch.Generator().manual_seed(0)
    images, targets = torch.rand(90, 1, 4, 4, generator=g) * 2 - 1, torch.arange(90) % 3
    data, extractor = LabelledImageData(images, targets), Counting(PixelFeatures(16))
    ev = evaluator(extractor, tmp_path, num_fake=60, batch_size=32)
    ev.prepare(data, "cpu", num_classes=0)
    plain = make_key(data.fingerprint(), "train", data.data_shape, None, extractor, 10_000)
    assert "class_stats" not in plain and cache_file(tmp_path, plain).is_file()  # unconditional: as before
    assert ev.real.class_count is None
    ev.prepare(data, "cpu", num_classes=3)
    key = make_key(data.fingerprint(), "train", data.data_shape, None, extractor, 10_000, num_classes=3)
    assert key == {**plain, "class_stats": 3}
    cached = load(cache_file(tmp_path, key), key)
    f = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).float().flatten(1)
    for got, want in zip(
        (cached.class_feature_sum, cached.class_outer_sum, cached.class_count), class_sums(f, targets, 3)
    ):
        assert torch.allclose(got, want.to(got.dtype))
    seen = extractor.images
    ev.prepare(data, "cpu", num_classes=3)
    assert extractor.images == seen  # read back, not recomputed
    out = ev.evaluate(LabelledDigits(images, targets, noise=0.1))
    assert "intra_fid" in out and "class_accuracy" not in out  # not the digits classifier


def test_class_accuracy_needs_data_labelled_with_the_digits(digits_data, digits_extractor, tmp_path):
    x, y = digits_data.real_samples(), digits_data.train_set.y
    for kind, expected in ((None, False), ("garments", False), ("digits", True)):
        ev = evaluator(digits_extractor, tmp_path, num_fake=100, batch_size=100)
        ev.prepare(LabelledImageData(x, y, label_kind=kind), "cpu", num_classes=10)
        assert ("class_accuracy" in ev.evaluate(LabelledDigits(x, y))) is expected, kind


def test_missing_labels_and_mismatched_classes_are_clear_errors(tmp_path):
    images = torch.rand(40, 1, 4, 4) * 2 - 1
    ev = evaluator(PixelFeatures(16), tmp_path, num_fake=30, batch_size=32, kid_subset_size=10)
    with pytest.raises(ValueError, match="labels of the real images"):
        ev.prepare(ImageData(images), "cpu", num_classes=10)
    with pytest.raises(ValueError, match="unlabelled"):
        ev.prepare(LabelledImageData(images, torch.full((40,), -1)), "cpu", num_classes=10)
    ev.prepare(ImageData(images), "cpu")  # no num_classes on the data: unconditional statistics
    conditional = LabelledDigits(images, torch.arange(40) % 4)
    with pytest.raises(ValueError, match="num_classes=4"):
        ev.evaluate(conditional)
    assert "intra_fid" not in ev.evaluate(StubSampler(images))
