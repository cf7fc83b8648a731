"""The fixed map from [-1, 1] to uint8, and gray-to-RGB, shared by real and generated images."""

from __future__ import annotations

import pytest
import torch

from ganforge.callbacks.images import to_uint8
from ganforge.metrics.protocol import quantize_uint8, to_extractor_input


def test_fixed_map_values():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    assert quantize_uint8(x).tolist() == [0, 0, 64, 128, 191, 255, 255]


def test_same_map_as_the_sample_grids():
    x = torch.linspace(-1.2, 1.2, 1001)
    assert torch.equal(quantize_uint8(x), to_uint8(x))


def test_no_per_batch_stretch():
    # a dim batch stays dim: no min/max rescaling (mimicry's mistake)
    x = torch.full((2, 1, 4, 4), -0.5)
    assert to_extractor_input(x, 1).unique().tolist() == [64]


def test_gray_is_repeated_for_rgb_extractors():
    x = torch.rand(3, 1, 5, 5) * 2 - 1
    rgb = to_extractor_input(x, 3)
    assert rgb.shape == (3, 3, 5, 5) and rgb.dtype == torch.uint8
    assert torch.equal(rgb[:, 0], rgb[:, 2])


def test_rgb_data_for_a_gray_extractor_is_an_error():
    with pytest.raises(ValueError, match="1-channel"):
        to_extractor_input(torch.zeros(1, 3, 4, 4), 1)
