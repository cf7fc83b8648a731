"""Stand-ins for the GAN module, the datamodule and an extractor, for metric tests (mimicry's stub G)."""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn


class StubSampler:
    """``sample(n, labels, generator)`` like GAN.sample: real images picked (and perturbed) by the caller's generator."""

    def __init__(self, images: Tensor, noise: float = 0.0, in_order: bool = False) -> None:
        self.images, self.noise, self.in_order = images, float(noise), in_order
        self.device = torch.device("cpu")
        self._next = 0

    def sample(
        self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        if self.in_order:  # the real set itself, batch after batch
            idx = torch.arange(self._next, self._next + n) % len(self.images)
            self._next += n
        else:
            idx = torch.randint(len(self.images), (n,), generator=generator)
        x = self.images[idx]
        if self.noise:
            x = x + self.noise * torch.randn(x.shape, generator=generator)
        return x.clamp(-1, 1)


class ImageData:
    """What metrics read of a datamodule; counts how often the real images are read."""

    def __init__(self, images: Tensor) -> None:
        self.images = images
        self.channels, self.image_size = images.shape[1], images.shape[-1]
        self.data_shape = tuple(images.shape[1:])
        self.reads = 0

    def real_samples(self, n: int | None = None) -> Tensor:
        self.reads += 1
        return self.images if n is None else self.images[:n]

    def fingerprint(self) -> str:
        return hashlib.sha1(self.images.contiguous().numpy().tobytes()).hexdigest()[:16]


class PixelFeatures(nn.Module):
    """An identity-like extractor: the uint8 pixels as float features, the first ``num_logits`` as logits."""

    in_channels = 1

    def __init__(self, num_features: int, num_logits: int = 10, scale: float = 1.0) -> None:
        super().__init__()
        self.num_features, self.num_logits = num_features, num_logits
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.name = "pixels"

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = x.float().flatten(1) * self.scale
        return f, f[:, : self.num_logits] / 64.0

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[0]


class Counting(nn.Module):
    """Wraps an extractor and counts the images it sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.name = getattr(inner, "name", "counting")
        self.in_channels = getattr(inner, "in_channels", 3)
        self.num_features = inner.num_features
        self.images = 0

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.images += len(x)
        return self.inner.features_and_logits(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[0]


def quantised(x: Tensor) -> Tensor:
    """What the extractor sees of float images: the uint8 map, as float64 pixels."""
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8).double().flatten(1)


class LabelledDigits:
    """A conditional sampler (``num_classes``): real images of the requested class, picked by the caller's
    generator; with ``follow_labels=False`` it ignores the labels (a generator that learnt no classes)."""

    def __init__(
        self, images: Tensor, targets: Tensor, noise: float = 0.0, follow_labels: bool = True
    ) -> None:
        self.images, self.targets, self.noise, self.follow_labels = (
            images,
            targets.long(),
            float(noise),
            follow_labels,
        )
        self.num_classes = int(self.targets.max()) + 1
        self.device = torch.device("cpu")
        self.order = torch.argsort(self.targets, stable=True)  # indices of class 0, then class 1, ...
        self.counts = torch.bincount(self.targets, minlength=self.num_classes)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        self.drawn: list[tuple[Tensor, Tensor]] = []  # what was generated, with the labels asked for

    def sample(
        self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        if labels is None:
            labels = torch.randint(self.num_classes, (n,), generator=generator)
        u = torch.rand(n, generator=generator)
        if self.follow_labels:
            pick = self.offsets[labels] + (u * self.counts[labels]).long()
            idx = self.order[pick]
        else:
            idx = (u * len(self.images)).long()
        x = self.images[idx]
        if self.noise:
            x = x + self.noise * torch.randn(x.shape, generator=generator)
        x = x.clamp(-1, 1)
        self.drawn.append((x, labels.clone()))
        return x


class LabelledImageData(ImageData):
    """``ImageData`` with labels where datamodules keep them (``train_set.y``), for per-class statistics."""

    def __init__(self, images: Tensor, targets: Tensor | None, label_kind: str | None = None) -> None:
        super().__init__(images)
        self.train_set = type("Set", (), {"x": images, "y": targets})()
        if label_kind is not None:
            self.label_kind = label_kind
