"""A small CNN trained on scikit-learn's digits, standing in for Inception on data=digits.

Inception features of upscaled 8x8 digits say little (and the weights need a
download); this classifier was trained on the same images the default run learns,
so its penultimate layer (global average pool, 64-d) gives FID/KID features and its
logits give an Inception Score whose ceiling is the 10 classes. Weights, their
training script (benchmarks/train_digits_classifier.py) and test accuracy
(weights/digits_cnn.json) ship with the package.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "digits_cnn.pt"
IMAGE_SIZE = 32


class DigitsCNN(nn.Module):
    """Three conv blocks (16, 32, 64 channels), global average pool, one linear layer."""

    num_features = 64
    num_classes = 10

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

        self.body = nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64))
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(self.num_features, self.num_classes)

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: float (N, 1, 32, 32) in [-1, 1]."""
        features = self.body(x).mean(dim=(2, 3))
        return features, self.head(self.dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[1]


def uint8_to_input(x: Tensor) -> Tensor:
    """uint8 (N, C, H, W) -> float (N, 1, 32, 32) in about [-1, 1]: the inverse of the uint8 map."""
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(
            f"the digits extractor takes uint8 (N, C, H, W) images, got {x.dtype} {tuple(x.shape)}"
        )
    x = x.float()
    if x.shape[1] != 1:  # RGB -> gray by the channel mean
        x = x.mean(dim=1, keepdim=True)
    x = (x - 128.0) / 127.5
    if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        shrink = x.shape[-1] > IMAGE_SIZE
        x = F.interpolate(
            x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False, antialias=shrink
        )
    return x


class DigitsFeatures(nn.Module):
    """Feature extractor for FID/IS/KID on digits; takes uint8 images like Inception does."""

    in_channels = 1
    num_features = DigitsCNN.num_features
    resize = f"bilinear to {IMAGE_SIZE}x{IMAGE_SIZE} (none at {IMAGE_SIZE}x{IMAGE_SIZE}; antialiased when shrinking)"

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        path = Path(weights).expanduser() if weights else WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(
                f"digits classifier weights not found at {path}; "
                "run `python benchmarks/train_digits_classifier.py` to write them"
            )
        self.net = DigitsCNN()
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net.requires_grad_(False).eval()
        self.name = "digits_cnn" if path == WEIGHTS else f"digits_cnn:{path.name}"

    def train(self, mode: bool = True) -> DigitsFeatures:
        return super().train(False)  # dropout must stay off, whoever calls .train()

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.net.features_and_logits(uint8_to_input(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[0]


def reported_accuracy() -> dict:
    """What the training script recorded beside the committed weights."""
    return json.loads(WEIGHTS.with_suffix(".json").read_text())
