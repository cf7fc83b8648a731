"""Real statistics: computed once per key, reused without touching the real images, written atomically."""

from __future__ import annotations

import pytest
import torch
from metrics_stubs import Counting, ImageData, PixelFeatures

from ganforge.metrics import real_stats
from ganforge.metrics.real_stats import cache_file, compute_real_stats, load, make_key, prepare_real_stats


def images(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def prepare(data: ImageData, extractor, cache_dir, num_real=None, kid_max_real=10_000):
    key = make_key(data.fingerprint(), "train", data.data_shape, num_real, extractor, kid_max_real)
    stats = prepare_real_stats(
        data.real_samples,
        key,
        extractor,
        cache_dir=cache_dir,
        batch_size=16,
        kid_max_real=kid_max_real,
        device="cpu",
    )
    return stats, cache_file(cache_dir, key)


def test_second_run_reuses_the_cache_without_reading_real_images(tmp_path):
    data, extractor = ImageData(images()), Counting(PixelFeatures(16))
    first, path = prepare(data, extractor, tmp_path)
    assert path.is_file() and extractor.images == 64 and data.reads == 1
    second, _ = prepare(data, extractor, tmp_path)
    assert extractor.images == 64 and data.reads == 1  # no feature extraction, no real images read
    assert second.count == first.count == 64
    assert torch.equal(second.outer_sum, first.outer_sum) and torch.equal(
        second.kid_features, first.kid_features
    )


def test_cached_sums_are_float64_sums_of_the_features(tmp_path):
    data, extractor = ImageData(images()), PixelFeatures(16)
    stats, _ = prepare(data, extractor, tmp_path)
    f = (data.images * 127.5 + 128).clamp(0, 255).to(torch.uint8).double().flatten(1)
    assert stats.feature_sum.dtype == torch.float64
    assert torch.allclose(stats.feature_sum, f.sum(0)) and torch.allclose(stats.outer_sum, f.T @ f)


@pytest.mark.parametrize(
    "change",
    ["num_real", "extractor_weights", "extractor_name", "data", "kid_max_real"],
)
def test_a_changed_key_recomputes(tmp_path, change):
    data, extractor = ImageData(images()), Counting(PixelFeatures(16))
    _, first_path = prepare(data, extractor, tmp_path)
    kwargs = {}
    if change == "num_real":
        kwargs["num_real"] = 32
    elif change == "kid_max_real":
        kwargs["kid_max_real"] = 8
    elif change == "extractor_weights":
        extractor = Counting(PixelFeatures(16, scale=2.0))
    elif change == "extractor_name":
        extractor = Counting(PixelFeatures(16))
        extractor.name = "other"
    elif change == "data":
        data = ImageData(images(seed=1))
    before = extractor.images
    stats, path = prepare(data, extractor, tmp_path, **kwargs)
    assert path != first_path and path.is_file()
    assert extractor.images > before  # recomputed
    if change == "num_real":
        assert stats.count == 32
    if change == "kid_max_real":
        assert len(stats.kid_features) == 8


def test_a_file_written_for_another_key_is_not_trusted(tmp_path):
    data, extractor = ImageData(images()), PixelFeatures(16)
    stats, path = prepare(data, extractor, tmp_path)
    other_key = dict(stats.key, num_real=7)
    assert load(path, other_key) is None
    path.write_bytes(b"not a checkpoint")
    assert load(path, stats.key) is None


def test_write_is_atomic(tmp_path, monkeypatch):
    data, extractor = ImageData(images()), PixelFeatures(16)
    _, path = prepare(data, extractor, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind

    # a write that dies half way leaves neither a partial file at the final name nor a temporary
    key = make_key(data.fingerprint(), "train", data.data_shape, 16, extractor, 10_000)
    stats = compute_real_stats(data.images[:16], extractor, key, 16, 10_000, torch.device("cpu"))
    target = cache_file(tmp_path, key)

    def dying_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(real_stats.torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        real_stats.save_atomic(stats, target)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_kid_features_are_capped(tmp_path):
    data, extractor = ImageData(images(50)), PixelFeatures(16)
    stats, _ = prepare(data, extractor, tmp_path, kid_max_real=20)
    assert stats.count == 50 and stats.kid_features.shape == (20, 16)
