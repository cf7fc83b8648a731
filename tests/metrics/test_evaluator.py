"""The evaluator: seeded and reproducible, leaves the global RNG alone, splits the fakes across ranks."""

from __future__ import annotations

import math

import pytest
import torch
from metrics_stubs import ImageData, PixelFeatures, StubSampler

from ganforge.metrics.evaluator import FidelityEvaluator


def evaluator(tmp_path, **kwargs) -> FidelityEvaluator:
    kwargs = {"num_fake": 100, "batch_size": 32, "kid_subsets": 3, "kid_subset_size": 50, **kwargs}
    ev = FidelityEvaluator(PixelFeatures(16), cache_dir=tmp_path, **kwargs)
    ev.prepare(ImageData(torch.rand(80, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1), "cpu")
    return ev


def test_same_seed_same_numbers_and_global_rng_untouched(tmp_path):
    images = torch.rand(200, 1, 4, 4) * 2 - 1
    ev = evaluator(tmp_path)
    state = torch.get_rng_state()
    first = ev.evaluate(StubSampler(images, noise=0.1))
    assert torch.equal(torch.get_rng_state(), state)
    assert ev.evaluate(StubSampler(images, noise=0.1)) == first
    other = evaluator(tmp_path, seed=1).evaluate(StubSampler(images, noise=0.1))
    assert other["fid"] != first["fid"]


@pytest.mark.parametrize("world_size", [1, 3])
def test_each_rank_draws_a_ceil_divided_share(tmp_path, world_size):
    class Recorder(StubSampler):
        drawn = 0

        def sample(self, n, labels=None, generator=None):
            Recorder.drawn += n
            return super().sample(n, labels, generator)

    ev = evaluator(tmp_path)
    ev.evaluate(Recorder(torch.zeros(4, 1, 4, 4)), rank=0, world_size=world_size)
    assert Recorder.drawn == math.ceil(100 / world_size)
    assert ev.protocol()["n_fake"] == math.ceil(100 / world_size) * world_size


def test_protocol_names_everything_a_number_depends_on(tmp_path):
    ev = evaluator(tmp_path)
    ev.evaluate(StubSampler(torch.zeros(4, 1, 4, 4)))
    p = ev.protocol()
    assert p["extractor"] == "pixels" and p["n_real"] == 80 and p["n_fake"] == 100
    assert p["resolution"] == [1, 4, 4] and p["seed"] == 0 and p["split"] == "train"
    assert "127.5" in p["quantisation"] and p["kid_subset_size"] == 50


def test_bad_settings_fail_at_construction():
    with pytest.raises(ValueError, match="num_fake"):
        FidelityEvaluator(PixelFeatures(16), num_fake=0)
    with pytest.raises(RuntimeError, match="prepare"):
        FidelityEvaluator(PixelFeatures(16)).evaluate(StubSampler(torch.zeros(2, 1, 4, 4)))


class ChannelMeans(torch.nn.Module):
    """Any nn.Module taking uint8 RGB: here the mean of each channel, 3 features and no logits."""

    def forward(self, x):
        return x.float().mean(dim=(2, 3)) + torch.arange(3.0) * x.float().std(dim=(2, 3))


def test_any_module_gives_fid_and_kid_without_logits(tmp_path):
    ev = FidelityEvaluator(ChannelMeans(), num_fake=64, batch_size=32, kid_subsets=2, cache_dir=tmp_path)
    ev.prepare(ImageData(torch.rand(40, 1, 4, 4) * 2 - 1), "cpu")
    results = ev.evaluate(StubSampler(torch.rand(40, 1, 4, 4) * 2 - 1))
    assert "is_mean" not in results  # no Inception Score without logits
    assert set(results) == {"fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"}
    assert ev.num_features == 3 and ev.protocol()["extractor"].endswith("ChannelMeans")
