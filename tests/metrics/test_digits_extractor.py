"""The digits classifier: committed weights with a recorded accuracy, uint8 input like Inception."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.image.fid import FrechetInceptionDistance

from ganforge.metrics.extractors.digits import WEIGHTS, DigitsFeatures, reported_accuracy
from ganforge.metrics.protocol import quantize_uint8


def test_weights_are_small_and_match_their_record():
    info = reported_accuracy()
    assert WEIGHTS.stat().st_size < 200_000
    assert info["sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert info["test_accuracy"] >= 0.97


def test_held_out_accuracy_is_what_the_record_says(digits_extractor):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "train_digits_classifier.py"
    spec = importlib.util.spec_from_file_location("train_digits_classifier", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, _, x_test, y_test = module.split_digits()
    with torch.no_grad():
        _, logits = digits_extractor.features_and_logits(x_test)
    accuracy = float((logits.argmax(1) == y_test).float().mean())
    assert accuracy == pytest.approx(reported_accuracy()["test_accuracy"], abs=1e-6)


def test_takes_uint8_gray_or_rgb_at_any_size(digits, digits_extractor):
    u8 = quantize_uint8(digits[:16])
    with torch.no_grad():
        f = digits_extractor(u8)
        f_rgb = digits_extractor(u8.expand(-1, 3, -1, -1))
        big = quantize_uint8(F.interpolate(digits[:16], size=64, mode="bilinear", align_corners=False))
        f_big = digits_extractor(big)
    assert f.shape == (16, digits_extractor.num_features)
    assert torch.allclose(f, f_rgb)
    assert torch.nn.functional.cosine_similarity(f, f_big).min() > 0.9
    with pytest.raises(ValueError, match="uint8"):
        digits_extractor(digits[:2])


def test_stays_in_eval_mode(digits, digits_extractor):
    digits_extractor.train()
    assert not any(m.training for m in digits_extractor.modules())
    # the logits pass the dropout (the features, taken before it, would not tell): in
    # training mode two calls would differ; in eval mode they repeat
    u8 = quantize_uint8(digits[:64])
    with torch.no_grad():
        _, first = digits_extractor.features_and_logits(u8)
        _, again = digits_extractor.features_and_logits(u8)
    assert torch.equal(first, again)


def test_is_a_torchmetrics_feature_network(digits):
    fid = FrechetInceptionDistance(feature=DigitsFeatures())  # num_features: no probing
    u8 = quantize_uint8(digits[:200])
    fid.update(u8, real=True)
    fid.update(u8, real=False)
    assert abs(float(fid.compute())) < 1e-3


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_digits_classifier"):
        DigitsFeatures(weights=str(tmp_path / "nope.pt"))
