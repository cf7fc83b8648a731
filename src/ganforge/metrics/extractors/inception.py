"""The InceptionV3 of FID/IS/KID papers, through torch-fidelity (the reference torchmetrics wraps).

torch-fidelity's ``FeatureExtractorInceptionV3`` holds the 2015 TensorFlow weights
converted to PyTorch and resizes its uint8 input to 299x299 itself, with bilinear
interpolation written to match TensorFlow 1.x bit for bit (no antialiasing), then
maps [0, 255] to [-1, 1] by (x - 128) / 128. It is used as is: the copy inside
torchmetrics' own ``FrechetInceptionDistance`` resizes with antialiasing by default
(``antialias=True`` in torchmetrics 1.9), and ``InceptionScore``/``KernelInceptionDistance``
offer no other choice, which gives numbers that differ from the published protocol.

The weights are read from a local file when one is given, else from torch hub's
checkpoint folder, downloading them there once when the machine is online.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import Tensor, nn

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
FEATURES, LOGITS = "2048", "logits_unbiased"  # torch-fidelity's layers for FID/KID and for IS


class InceptionWeightsMissing(FileNotFoundError):
    """Inception weights are neither on disk nor downloadable; raised before training."""


def hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def _online(host: str = "github.com", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_weights(weights: str | None, allow_download: bool = True) -> Path | None:
    """The weights file to read; None means torch-fidelity may download it (online only)."""
    how_to = (
        f"Download {WEIGHTS_URL} on a machine with internet access and either put "
        f"{WEIGHTS_FILE} in {hub_weights_path().parent} or pass metrics.extractor.weights=/path/to/{WEIGHTS_FILE}"
    )
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InceptionWeightsMissing(f"metrics.extractor.weights={weights}: no such file. {how_to}.")
        return path
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    if allow_download and _online():
        return None
    raise InceptionWeightsMissing(
        f"Inception weights {WEIGHTS_FILE} are not in {cached.parent} and cannot be downloaded "
        f"(offline or downloads disabled). {how_to}. Or use metrics=digits for the digits data."
    )


class InceptionV3Features(nn.Module):
    """2048-d pool features for FID/KID and the 1008 unbiased logits for IS, from one pass."""

    name = "inception-v3-compat"
    in_channels = 3
    num_features = 2048
    resize = "torch-fidelity: TensorFlow-1.x-compatible bilinear to 299x299, no antialiasing"

    def __init__(self, weights: str | None = None, allow_download: bool = True) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = resolve_weights(weights, allow_download)
        self.net = FeatureExtractorInceptionV3(
            self.name, [FEATURES, LOGITS], feature_extractor_weights_path=str(path) if path else None
        )
        self.weights_path = str(path) if path else str(hub_weights_path())

    def train(self, mode: bool = True) -> InceptionV3Features:
        return super().train(False)

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features, logits = self.net(x)
        return features, logits

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[0]
