"""scikit-learn's handwritten digits: 1,797 8x8 images that ship with the package.

Values 0..16 are scaled to [-1, 1] and resized to ``image_size`` by bilinear
interpolation, so the default run needs no download.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganforge.data.base import GANDataModule, TensorDataset


def load_digits_tensor(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 2 - 1).contiguous()
    return x, torch.as_tensor(digits.target, dtype=torch.long)


class DigitsDataModule(GANDataModule):
    # the labels the digits classifier was trained on: metrics report class accuracy
    label_kind = "digits"

    def __init__(self, image_size: int = 32, channels: int = 1, num_classes: int = 10, **kwargs):
        if channels != 1:
            raise ValueError(f"data=digits is grayscale: data.channels must be 1, got {channels}")
        if num_classes not in (0, 10):
            raise ValueError(
                f"data=digits has 10 classes; data.num_classes must be 10 (or 0), got {num_classes}"
            )
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"data.image_size must be an integer >= 8 for digits, got {image_size}")
        kwargs.setdefault("data_shape", (channels, image_size, image_size))
        super().__init__(image_size=image_size, channels=channels, num_classes=num_classes, **kwargs)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self.take_subset(TensorDataset(*load_digits_tensor(self.image_size)))
