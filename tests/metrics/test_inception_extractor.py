"""Inception through torch-fidelity: local weights end to end, and a clear error offline without them."""

from __future__ import annotations

import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as fe
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from metrics_stubs import ImageData, StubSampler

from ganforge.metrics.evaluator import FidelityEvaluator
from ganforge.metrics.extractors import inception
from ganforge.metrics.extractors.inception import WEIGHTS_FILE, InceptionV3Features, InceptionWeightsMissing


@pytest.fixture
def no_downloads(monkeypatch, tmp_path):
    """Offline: any download attempt fails the test; torch hub's folder is empty."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(fe, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(inception, "_online", lambda *a, **k: False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


@pytest.fixture(scope="module")
def local_inception(random_inception_weights):
    return InceptionV3Features(weights=str(random_inception_weights))


def test_local_weights_give_2048_features_and_1008_logits(local_inception):
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        features, logits = local_inception.features_and_logits(x)
    assert features.shape == (1, 2048) and logits.shape == (1, 1008)
    assert torch.isfinite(features).all() and torch.equal(local_inception(x), features)


@pytest.mark.slow
def test_local_weights_run_end_to_end(local_inception, no_downloads, tmp_path):
    # the callback's path: 8x8 gray images, repeated to RGB, resized to 299 inside torch-fidelity
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ev = FidelityEvaluator(
        local_inception,
        num_fake=4,
        batch_size=4,
        kid_subsets=2,
        is_splits=2,
        cache_dir=tmp_path,
        pr_k=0,  # a k-th neighbour needs more than k images; 4 leave precision/recall/density/coverage off
        dc_k=0,
    )
    ev.prepare(ImageData(images), "cpu")
    results = ev.evaluate(StubSampler(images))
    assert set(results) == {"fid", "is_mean", "is_std", "kid_mean", "kid_std"}
    assert ev.real.feature_sum.shape == (2048,) and ev.real.kid_features.shape == (4, 2048)
    assert ev.protocol()["extractor"] == "inception-v3-compat"


def test_missing_configured_file_names_the_file_and_never_downloads(no_downloads, tmp_path):
    with pytest.raises(InceptionWeightsMissing) as err:
        InceptionV3Features(weights=str(tmp_path / "absent.pth"))
    assert WEIGHTS_FILE in str(err.value) and "metrics.extractor.weights" in str(err.value)


def test_offline_without_weights_says_where_to_put_them(no_downloads, tmp_path):
    with pytest.raises(InceptionWeightsMissing) as err:
        InceptionV3Features()
    message = str(err.value)
    assert WEIGHTS_FILE in message and str(tmp_path / "hub" / "checkpoints") in message


def test_weights_in_torch_hub_folder_are_found(random_inception_weights, no_downloads, tmp_path):
    target = tmp_path / "hub" / "checkpoints" / WEIGHTS_FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(random_inception_weights.read_bytes())
    assert inception.resolve_weights(None) == target


def test_config_fails_before_training(no_downloads, tmp_path):
    from pathlib import Path

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "metrics=inception",
                f"metrics.extractor.weights={tmp_path / 'absent.pth'}",
                f"paths.root_dir={tmp_path}",
                f"paths.output_dir={tmp_path}",
            ],
        )
    with pytest.raises(Exception) as err:  # Hydra wraps the error of the nested instantiation
        instantiate(cfg.callbacks.metrics)
    assert WEIGHTS_FILE in str(err.value)
