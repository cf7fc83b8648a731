"""Turn generator output into pictures: a fixed [-1, 1] -> uint8 map, grids, PNG files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from ganforge.metrics.protocol import quantize_uint8


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] -> {0..255} by the metrics protocol's fixed map (``quantize_uint8``: x*127.5 + 128,
    clamped, truncated; no per-batch min/max stretch), so a picture holds what the metrics see."""
    return quantize_uint8(x)


def image_grid(x: Tensor, nrow: int = 8, padding: int = 2) -> Tensor:
    """uint8 grid, CHW with 3 channels."""
    grid = make_grid(to_uint8(x).cpu(), nrow=nrow, padding=padding, pad_value=255)
    return grid


def save_png(chw: Tensor, path: str | os.PathLike) -> Path:
    """Write atomically: a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = chw.permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a picture is for everyone who can read the run
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
