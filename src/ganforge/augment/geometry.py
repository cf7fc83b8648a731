"""Integer-pixel geometry as one differentiable gather: flips, quarter turns, shifts.

Every transform here moves whole pixels, so each output pixel reads exactly one input
pixel. The source of every output pixel is computed per sample and the batch is read
with one ``torch.gather``, whose backward routes each output gradient to the pixel it
came from: the discriminator's gradient reaches the generator through the transform
unchanged in size. At the identity the gather returns the input bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor


def source_grid(n: int, size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Row and column index of every output pixel, (n, size, size) each, before any transform."""
    r = torch.arange(size, device=device)
    rows = r.view(1, size, 1).expand(n, size, size)
    cols = r.view(1, 1, size).expand(n, size, size)
    return rows, cols


def rotate90_source(rows: Tensor, cols: Tensor, k: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Where ``torch.rot90(x, k, dims=(2, 3))`` reads each output pixel from, per-sample k in 0..3."""
    k = k.view(-1, 1, 1)
    last = size - 1
    # one quarter turn reads out[i, j] from in[j, last - i]; k turns apply that k times
    cand_r = (rows, cols, last - rows, last - cols)
    cand_c = (cols, last - rows, last - cols, rows)
    out_r, out_c = rows, cols
    for turns in (1, 2, 3):
        out_r = torch.where(k == turns, cand_r[turns], out_r)
        out_c = torch.where(k == turns, cand_c[turns], out_c)
    return out_r, out_c


def reflect(index: Tensor, size: int) -> Tensor:
    """Fold indices outside [0, size) back inside by mirror reflection without repeating the edge
    (``torch.nn.functional.pad(mode="reflect")``)."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    m = index.remainder(period)
    return torch.where(m < size, m, period - m)


def gather_pixels(x: Tensor, rows: Tensor, cols: Tensor, valid: Tensor | None = None) -> Tensor:
    """``out[n, c, i, j] = x[n, c, rows[n, i, j], cols[n, i, j]]``; zero where ``valid`` is False."""
    n, c, h, w = x.shape
    if valid is not None:
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    index = (rows * w + cols).reshape(n, 1, h * w).expand(n, c, h * w)
    out = torch.gather(x.reshape(n, c, h * w), 2, index).view(n, c, h, w)
    if valid is not None:
        out = out * valid.unsqueeze(1).to(out.dtype)
    return out


def check_images(x: Tensor, who: str) -> None:
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"{who} augments square images (N, C, H, H); got shape {tuple(x.shape)}. "
            "Set model.augment=none for data that are not square images (the 2-D toys)."
        )
