"""The toy scatter picture: samples land on the pixels their coordinates name."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ganforge.callbacks.scatter import MODE_RGB, SAMPLE_RGB, scatter_image, scatter_plot
from ganforge.data.toy2d import ring_modes

SIZE, MARGIN, HEAD = 400, 10, 24  # the layout scatter_image draws


def pixel_at(x, y, span):
    """(row, col) of the picture pixel showing data point (x, y)."""
    scale = (SIZE - 1) / (2 * span)
    return round((span - y) * scale) + HEAD, round((x + span) * scale) + MARGIN


def plot_pixel(picture, x, y, span):
    row, col = pixel_at(x, y, span)
    return tuple(picture[:, row, col].tolist())


def test_samples_darken_their_pixels_and_nothing_else():
    modes = ring_modes(8, 1.0)
    span = 1.5
    # 5 dots on one spot far from every mode: 1 - 0.6^5 = 92 % of the sample colour
    x = torch.tensor([[-1.2, 1.2]]).expand(5, 2)
    picture = scatter_image(x, modes, std=0.01, span=span)
    assert picture.dtype == torch.uint8 and picture.shape == (3, SIZE + HEAD + MARGIN, SIZE + 2 * MARGIN)
    blend = 1 - 0.6**5
    expected = tuple(round(255 - blend * (255 - c)) for c in SAMPLE_RGB)
    assert plot_pixel(picture, -1.2, 1.2, span) == expected
    # the opposite corner of the plot is blank, the mode centres carry the mode colour
    assert plot_pixel(picture, 1.2, -1.2, span) == (255, 255, 255)
    for mx, my in modes.tolist():  # within a pixel: some centres fall on a pixel boundary
        row, col = pixel_at(mx, my, span)
        around = picture[:, row - 1 : row + 2, col - 1 : col + 2].reshape(3, -1).T.tolist()
        assert list(MODE_RGB) in around


def test_one_dot_is_lighter_than_many():
    modes = ring_modes(8, 1.0)
    one = scatter_image(torch.tensor([[0.0, 0.3]]), modes, 0.01, span=1.5)
    many = scatter_image(torch.tensor([[0.0, 0.3]]).expand(20, 2), modes, 0.01, span=1.5)
    assert sum(plot_pixel(many, 0.0, 0.3, 1.5)) < sum(plot_pixel(one, 0.0, 0.3, 1.5)) < 3 * 255


def test_points_outside_the_square_are_left_out(tmp_path):
    modes = ring_modes(8, 1.0)
    far = torch.tensor([[50.0, -50.0], [float("inf"), 0.0]])
    path = scatter_plot(far, modes, 0.01, tmp_path / "deep" / "scatter.png", title="far away")
    with Image.open(path) as image:
        assert image.size == (SIZE + 2 * MARGIN, SIZE + HEAD + MARGIN)
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    # nothing of the sample colour anywhere in the plot area
    plot = pixels[:, HEAD : HEAD + SIZE, MARGIN : MARGIN + SIZE].reshape(3, -1).int()
    sample_like = (plot[2] > plot[0] + 40) & (plot[2] > 150)
    assert not sample_like.any()
