"""Scatter plot of 2-D samples over the modes of a toy mixture, drawn straight into pixels.

Drawn with a histogram and PIL rather than matplotlib: matplotlib took 150-300 ms a
plot here, which at one plot per 1,000 steps of a 2-D toy was 2-3 % of training time
(benchmarks/overhead.py); this takes about 20 ms, the PNG included. Samples are blended as if
each were a dot of opacity 0.4, so dense regions darken the way a scatter plot does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from ganforge.callbacks.images import save_png

SAMPLE_RGB = (31, 119, 180)
MODE_RGB = (214, 39, 40)
ALPHA = 0.4


def scatter_image(
    samples: Tensor, modes: Tensor, std: float, title: str = "", size: int = 400, span: float | None = None
) -> Tensor:
    """uint8 CHW picture: samples (blue), modes (red crosses) with circles of 3 std.

    The square shown is [-span, span]^2; by default 1.5 times the farthest mode, so
    samples far off the data fall outside it (they still count in the title's figures).
    """
    samples, modes = samples.detach().float().cpu().reshape(-1, 2), modes.float().cpu()
    span = float(span or 1.5 * modes.abs().max().clamp_min(1e-6))
    margin, head = 10, 24
    scale = (size - 1) / (2 * span)

    def to_px(points: Tensor) -> Tensor:  # y grows upwards in the plot, downwards in pixels
        return torch.stack([(points[:, 0] + span) * scale, (span - points[:, 1]) * scale], 1)

    px = to_px(samples).round()
    inside = ((px >= 0) & (px < size)).all(1)  # also drops nan and inf
    px = px[inside].long()
    flat = px[:, 1] * size + px[:, 0]
    counts = torch.bincount(flat, minlength=size * size).float().view(1, 1, size, size)
    counts = F.max_pool2d(counts, 3, stride=1, padding=1)[0, 0]  # a dot is 3 px wide
    coverage = 1 - (1 - ALPHA) ** counts  # n overlapping dots of opacity ALPHA
    rgb = torch.tensor(SAMPLE_RGB, dtype=torch.float32).view(3, 1, 1)
    plot = 255 - coverage * (255 - rgb)

    canvas = Image.new("RGB", (size + 2 * margin, size + margin + head), "white")
    canvas.paste(Image.fromarray(plot.round().to(torch.uint8).permute(1, 2, 0).numpy()), (margin, head))
    draw = ImageDraw.Draw(canvas)
    radius = max(3 * std * scale, 2.0)
    for x, y in to_px(modes).tolist():
        x, y = round(x) + margin, round(y) + head
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=MODE_RGB)
        draw.line((x - 3, y - 3, x + 3, y + 3), fill=MODE_RGB)
        draw.line((x - 3, y + 3, x + 3, y - 3), fill=MODE_RGB)
    draw.rectangle((margin - 1, head - 1, margin + size, head + size), outline=(160, 160, 160))
    draw.text((margin, 4), f"{title}   (x, y in [-{span:.3g}, {span:.3g}])".strip(), fill="black")
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1)


def scatter_plot(samples: Tensor, modes: Tensor, std: float, path: Path, title: str = "") -> Path:
    """Write :func:`scatter_image` as a PNG at ``path``."""
    return save_png(scatter_image(samples, modes, std, title), path)
