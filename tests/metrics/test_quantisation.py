"""The fixed map from [-1, 1] to uint8, and gray-to-RGB, shared by real and generated images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.callbacks.images import image_grid, save_png, to_uint8
from ganforge.metrics.protocol import quantize_uint8, to_extractor_input


def test_fixed_map_values():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    assert quantize_uint8(x).tolist() == [0, 0, 64, 128, 191, 255, 255]


def at(y: float) -> float:
    """The x in [-1, 1] that x * 127.5 + 128 maps to y."""
    return (y - 128) / 127.5


# hand-picked inputs and the uint8 value each must become: x * 127.5 + 128, clamped to
# [0, 255], truncated (rounding would differ on every line marked "round:", a cast without
# the clamp on every line marked "wraps:")
MAP = [
    (-3.0, 0),  # -254.5; wraps: 2
    (-1.5, 0),  # -63.25; wraps: 193
    (-1.01, 0),  # -0.77; round: -1, then clamped to 0
    (-1.0, 0),  # 0.5; round half up: 1
    (at(0.999), 0),  # round: 1
    (-0.5, 64),  # 64.25
    (-0.50001, 64),  # just below -0.5: 64.2487
    (at(64.999), 64),  # round: 65
    (0.0, 128),
    (at(128.499), 128),  # just below the .5 boundary: 128 either way
    (at(128.999), 128),  # round: 129
    (0.49999, 191),  # just below 0.5: 191.7487; round: 192
    (0.5, 191),  # 191.75; round: 192
    (at(191.499), 191),
    (at(254.999), 254),  # round: 255
    (1.0, 255),  # 255.5; round: 256, which wraps to 0 without the clamp
    (1.01, 255),  # 256.77; wraps: 0
    (1.5, 255),  # 319.25; wraps: 63
    (3.0, 255),  # 510.5; wraps: 254
]
VALUES = torch.tensor([x for x, _ in MAP])
EXPECTED = torch.tensor([u for _, u in MAP], dtype=torch.uint8)


def test_hand_picked_values_are_truncated_and_clamped():
    assert quantize_uint8(VALUES).tolist() == EXPECTED.tolist()


def picked_images(n: int, channels: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, channels, h, w) images holding every value of MAP, shuffled; and their expected uint8."""
    size = n * channels * h * w
    assert size >= len(MAP)
    idx = torch.randperm(size, generator=torch.Generator().manual_seed(0)) % len(MAP)
    return VALUES[idx].reshape(n, channels, h, w), EXPECTED[idx].reshape(n, channels, h, w)


def read_png(path) -> tuple[str, torch.Tensor]:
    with Image.open(path) as im:
        return im.mode, torch.from_numpy(np.array(im))


@pytest.mark.parametrize("channels", [1, 3])
def test_sample_grid_png_holds_the_protocols_uint8_values(tmp_path, channels):
    # what SampleGrid writes: image_grid (rows of 2, 2 px padding), then save_png
    x, expected = picked_images(4, channels, 2, 3)
    assert torch.equal(quantize_uint8(x), expected)  # the metrics protocol's values
    mode, grid = read_png(save_png(image_grid(x, nrow=2, padding=2), tmp_path / "grid.png"))
    assert mode == "RGB" and grid.shape == (2 + 2 * (2 + 2), 2 + 2 * (3 + 2), 3)
    grid = grid.permute(2, 0, 1)  # CHW
    for i in range(4):
        row, col = divmod(i, 2)
        top, left = 2 + row * (2 + 2), 2 + col * (3 + 2)
        cell = grid[:, top : top + 2, left : left + 3]
        assert torch.equal(cell, expected[i].expand(3, -1, -1)), i  # gray shown as R = G = B
    assert (grid[:, :, :2] == 255).all() and (grid[:, :2] == 255).all()  # the padding


def test_single_gray_png_holds_the_protocols_uint8_values(tmp_path):
    # what sample.py individual=true and repair.py write: save_png(to_uint8(image))
    x, expected = picked_images(1, 1, 4, 5)
    mode, png = read_png(save_png(to_uint8(x[0]), tmp_path / "one.png"))
    assert mode == "L" and torch.equal(png, quantize_uint8(x[0, 0])) and torch.equal(png, expected[0, 0])


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
