"""Image files -> uint8 CHW tensors at the training resolution.

Whatever the file holds (grayscale, RGB, RGBA, palette, 16-bit) comes out with the
configured number of channels: transparent pixels are composited onto white, which
is what a viewer shows, rather than left as the undefined colour underneath.
Geometry is the usual GAN preprocessing: an optional centre crop of ``crop`` source
pixels (CelebA's 178x178), then the short side resized to ``size`` and a centre crop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _center_crop(im: Image.Image, side: int) -> Image.Image:
    w, h = im.size
    side = min(side, w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if im.mode.startswith("I;16"):  # 16-bit grayscale PNG: keep the top byte, not a clipped value
        im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8))
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), rgba)
    return im if im.mode == mode else im.convert(mode)


def decode(path: str | Path, size: int, channels: int, crop: int | None = None) -> Tensor:
    """One file -> uint8 tensor of shape (channels, size, size). Raises OSError/ValueError if unreadable."""
    with Image.open(path) as im:
        w, h = im.size
        # JPEGs can be decoded at 1/2, 1/4, 1/8 scale straight from the DCT: several times
        # faster for large photos, and the result is still at least the size we need.
        short = min(crop or min(w, h), w, h)
        im.draft("RGB" if channels == 3 else "L", (-(-w * size // short), -(-h * size // short)))
        scale = im.size[0] / w
        if "exif" in im.info:  # camera photos: honour the orientation tag (parsing costs ~0.1 ms)
            im = ImageOps.exif_transpose(im)
        im = _to_mode(im, "RGB" if channels == 3 else "L")
        if crop:
            im = _center_crop(im, round(crop * scale))
        w, h = im.size
        if min(w, h) != size:
            r = size / min(w, h)
            im = im.resize((max(size, round(w * r)), max(size, round(h * r))), Image.Resampling.BICUBIC)
        im = _center_crop(im, size)
        array = np.asarray(im, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy())
