"""ADA: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data").

Every transform is applied to each image independently with probability ``p``, which
adapts: the discriminator's overfitting is read from r_t = E[sign(D(x_real))], gathered
over ``interval`` discriminator steps (and averaged over DDP ranks), and p moves by
sign(r_t - target) x (images shown in the interval) / (``speed_kimg`` x 1000), so p can go
from 0 to 1 in ``speed_kimg`` thousand images (the paper: target 0.6, 500k images, every 4
minibatches). At p = 0 the output is the input, bit for bit.

The pipeline here is the paper's "blit" and "color" groups, in that order:

- blit: x-flip; a rotation by a uniform multiple of 90 degrees; an integer translation of
  up to 1/8 of the side, mirror-padded;
- color (images in [-1, 1], around mid-gray as the paper's): brightness + N(0, 0.2);
  contrast x lognormal(0, 0.5 ln 2); and on RGB images luma flip, hue rotation by
  U(-pi, pi) about the luma axis, saturation x lognormal(0, ln 2) off the luma axis.

The geometric group of the paper (scaling, arbitrary rotation, fractional translation)
needs resampling filters and is left out; the paper's own ablation (its fig. 4) finds
blit + geom + color best, blit + color close to it on small sets.

State: ``p`` and the last ``rt`` are buffers (the same on every rank; in checkpoints).
The sign sums of the interval in progress are this rank's own and travel in the
checkpoint per rank (``rank_state``), so a resumed run adjusts p exactly as the
uninterrupted run does.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ganforge.augment.geometry import (
    check_images,
    gather_pixels,
    reflect,
    rotate90_source,
    source_grid,
)

_LUMA = torch.tensor([1.0, 1.0, 1.0]) / math.sqrt(3.0)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class AdaptiveAugment(nn.Module):
    """The ADA pipeline with an adaptive probability ``p``.

    Args:
        target: the r_t that p steers toward (0.6).
        speed_kimg: thousands of real images in which p can go from 0 to 1 (500).
        interval: discriminator steps between adjustments (4).
        p: the starting probability (0); with ``adaptive=False`` it stays fixed.
        translate: the largest shift, as a fraction of the side (0.125).
        xflip / rotate90 / xint / brightness / contrast / lumaflip / hue / saturation:
            multipliers of p per transform (1: on, 0: off), as stylegan2-ada's options.
    """

    def __init__(
        self,
        target: float = 0.6,
        speed_kimg: float = 500.0,
        interval: int = 4,
        p: float = 0.0,
        adaptive: bool = True,
        translate: float = 0.125,
        xflip: float = 1.0,
        rotate90: float = 1.0,
        xint: float = 1.0,
        brightness: float = 1.0,
        contrast: float = 1.0,
        lumaflip: float = 1.0,
        hue: float = 1.0,
        saturation: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"model.augment_options.p={p}: a probability in [0, 1]")
        if not speed_kimg > 0 or int(interval) < 1:
            raise ValueError(
                f"model.augment_options: speed_kimg must be > 0 and interval >= 1, got {speed_kimg}, {interval}"
            )
        self.target, self.speed_kimg, self.interval = float(target), float(speed_kimg), int(interval)
        self.adaptive, self.translate = bool(adaptive), float(translate)
        self.strength = {
            "xflip": xflip, "rotate90": rotate90, "xint": xint, "brightness": brightness,
            "contrast": contrast, "lumaflip": lumaflip, "hue": hue, "saturation": saturation,
        }  # fmt: skip
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("rt", torch.tensor(0.0))  # 0 until the first adjustment
        # this rank's sum of sign(D(real)) and count over the interval in progress
        self._signs = torch.zeros((), dtype=torch.float64)
        self._count = torch.zeros((), dtype=torch.float64)

    # ------------------------------------------------------------------ augmenting
    def _chosen(self, name: str, n: int, device) -> Tensor:
        """Which samples get transform ``name`` this call (a bool per sample)."""
        return torch.rand(n, device=device) < self.p * self.strength[name]

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, "ADA")
        n, channels, size = x.shape[0], x.shape[1], x.shape[-1]
        x = self._blit(x, n, size)
        return self._color(x, n, channels)

    def _blit(self, x: Tensor, n: int, size: int) -> Tensor:
        dev = x.device
        rows, cols = source_grid(n, size, dev)
        # out = translate(rotate(flip(x))): undo the last transform first
        shift = round(self.translate * size)
        t = torch.rand(n, 2, device=dev) * 2 - 1
        t = torch.where(self._chosen("xint", n, dev).unsqueeze(1), torch.round(t * shift), 0).long()
        rows, cols = reflect(rows - t[:, 0, None, None], size), reflect(cols - t[:, 1, None, None], size)
        k = torch.randint(0, 4, (n,), device=dev)
        k = torch.where(self._chosen("rotate90", n, dev), k, 0)
        rows, cols = rotate90_source(rows, cols, k, size)
        flip = self._chosen("xflip", n, dev).view(n, 1, 1) & (torch.rand(n, 1, 1, device=dev) < 0.5)
        cols = torch.where(flip, size - 1 - cols, cols)
        return gather_pixels(x, rows, cols)

    def _color(self, x: Tensor, n: int, channels: int) -> Tensor:
        dev, dt = x.device, x.dtype
        one = torch.ones(n, device=dev)
        b = torch.where(self._chosen("brightness", n, dev), torch.randn(n, device=dev) * 0.2, 0)
        c = torch.where(self._chosen("contrast", n, dev), torch.exp2(torch.randn(n, device=dev) * 0.5), one)
        if channels != 3:  # gray (or other) images: brightness and contrast only
            return (x * c.view(n, 1, 1, 1) + b.view(n, 1, 1, 1)).to(dt)
        v = _LUMA.to(dev)
        vv = torch.outer(v, v)
        eye = torch.eye(3, device=dev)
        m = eye.expand(n, 3, 3) * c.view(n, 1, 1)
        flip = self._chosen("lumaflip", n, dev) & (torch.rand(n, device=dev) < 0.5)
        m = (eye - 2 * vv * flip.view(n, 1, 1).float()) @ m
        theta = torch.where(self._chosen("hue", n, dev), (torch.rand(n, device=dev) * 2 - 1) * math.pi, 0)
        cross = torch.tensor(
            [[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]], device=dev
        )  # [v]x: Rodrigues' rotation about the luma axis
        cos, sin = theta.cos().view(n, 1, 1), theta.sin().view(n, 1, 1)
        m = (cos * eye + sin * cross + (1 - cos) * vv) @ m
        s = torch.where(self._chosen("saturation", n, dev), torch.exp2(torch.randn(n, device=dev)), one).view(
            n, 1, 1
        )
        m = (vv + s * (eye - vv)) @ m
        out = torch.einsum("nij,njhw->nihw", m.to(dt), x) + b.view(n, 1, 1, 1).to(dt)
        # where nothing was chosen m is the identity up to rounding: keep the input exactly
        untouched = (b == 0) & (c == 1) & ~flip & (theta == 0) & (s.view(n) == 1)
        return torch.where(untouched.view(n, 1, 1, 1), x, out)

    # ------------------------------------------------------------------ adapting p
    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        """Add D's logits on this rank's real minibatch to the interval's sign sum."""
        if self._signs.device != real_logits.device:
            self._signs, self._count = self._signs.to(real_logits.device), self._count.to(real_logits.device)
        self._signs += real_logits.detach().sign().sum(dtype=torch.float64)
        self._count += real_logits.numel()

    @torch.no_grad()
    def adjust(self, images: int) -> None:
        """End of an interval: r_t over all ranks; p moves by ``images`` (all ranks, the interval's
        real images) / (speed_kimg x 1000) toward the target, within [0, 1]."""
        totals = torch.stack([self._signs, self._count])
        if _distributed():
            dist.all_reduce(totals)  # sums of integers: exact in any order, so every rank gets one p
        rt = totals[0] / totals[1].clamp_min(1)
        self.rt.copy_(rt.to(self.rt.dtype))
        if self.adaptive:
            step = torch.sign(rt - self.target) * (images / (self.speed_kimg * 1000.0))
            self.p.copy_((self.p + step.to(self.p.dtype)).clamp(0.0, 1.0))
        self._signs.zero_()
        self._count.zero_()

    # ------------------------------------------------------------------ checkpoints
    def rank_state(self) -> dict:
        return {"signs": self._signs.detach().cpu().clone(), "count": self._count.detach().cpu().clone()}

    def load_rank_state(self, state: dict) -> None:
        if state:
            device = self.p.device
            self._signs = state["signs"].to(device, torch.float64).clone()
            self._count = state["count"].to(device, torch.float64).clone()

    def extra_repr(self) -> str:
        return f"target={self.target}, speed_kimg={self.speed_kimg:g}, interval={self.interval}"
