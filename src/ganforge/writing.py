"""Output files of the tools that use a trained GAN: no silent overwrites, atomic GIFs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image
from torch import Tensor

from ganforge.pipeline import ConfigError


def refuse_overwrite(paths: Iterable[Path], overwrite: bool) -> None:
    """Fail before anything is written when an output exists and ``overwrite`` is off."""
    if overwrite:
        return
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing:
        raise ConfigError(
            f"{', '.join(existing)} already exist(s); pass overwrite=true to replace, or choose another out="
        )


def save_gif(frames: Sequence[Tensor], path: str | os.PathLike, frame_ms: int = 100) -> Path:
    """uint8 CHW frames as a looping GIF, written to a temporary name and then moved into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in frames]
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".gif")
    os.close(fd)
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    os.replace(tmp, path)
    return path
