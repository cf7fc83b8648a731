"""Fixtures for the FID/IS/KID tests: digits, the digits extractor, random local Inception weights."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # metrics_stubs is shared with the DDP worker script
    sys.path.insert(0, HERE)


@pytest.fixture(scope="session")
def digits() -> torch.Tensor:
    from ganforge.data.digits import load_digits_tensor

    return load_digits_tensor(32)[0]


@pytest.fixture(scope="session")
def digits_extractor():
    from ganforge.metrics.extractors.digits import DigitsFeatures

    return DigitsFeatures()


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory) -> Path:
    """torch-fidelity's InceptionV3 with random initial weights, saved locally: no download, ever."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    # construction without any weights: the loader hands back nothing and loading is skipped
    with (
        mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None),
    ):
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("inception") / "weights-inception-random.pth"
    torch.save(net.state_dict(), path)
    return path
