"""Turn generator output into pictures: a fixed [-1, 1] -> uint8 map, grids, PNG files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] -> {0..255} by the fixed map x*127.5 + 128 (no per-batch min/max stretch)."""
    return (x.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


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


def log_image(trainer, key: str, chw_uint8: Tensor, step: int) -> None:
    """Send an image to every attached logger that takes images."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_image"):  # TensorBoard
            experiment.add_image(key, chw_uint8, global_step=step)
        elif hasattr(logger, "log_image"):  # W&B
            logger.log_image(key=key, images=[chw_uint8.permute(1, 2, 0).numpy()])
