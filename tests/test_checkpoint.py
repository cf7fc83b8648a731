"""ganforge.load: a trained GAN back from its checkpoint, without Hydra's app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.checkpoint import load_checkpoint
from ganforge.pipeline import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_tiny) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("ckpt")
    return {name: train_tiny(base / name, name) for name in ["dcgan", "cdcgan"]}


def test_load_returns_the_trained_generator_in_eval_mode(runs):
    gan = ganforge.load(runs["dcgan"])
    assert not gan.training and gan.device.type == "cpu" and gan.latent_dim == 16
    ckpt = torch.load(runs["dcgan"], weights_only=True)
    assert gan.g_steps == ckpt["ganforge"]["steps"]["generator"] > 0
    weights = ckpt["state_dict"]
    for name, value in gan.state_dict().items():
        assert torch.equal(value, weights[name]), name
    x = gan.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 16, 16) and x.abs().max() <= 1
    assert torch.equal(x, gan.sample(5, generator=torch.Generator().manual_seed(0)))


def test_load_conditional_samples_the_classes_asked_for(runs):
    gan = ganforge.load(runs["cdcgan"], map_location="cpu")
    z = torch.randn(4, gan.latent_dim)
    a = gan.sample(4, labels=torch.tensor([0, 0, 0, 0]), z=z)
    b = gan.sample(4, labels=torch.tensor([1, 1, 1, 1]), z=z)
    assert a.shape == (4, 1, 16, 16) and not torch.allclose(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_load_onto_the_gpu(runs):
    gan = ganforge.load(runs["dcgan"], map_location="cuda")
    assert gan.sample(3).device.type == "cuda"


def test_importing_ganforge_stays_cheap():
    code = (
        "import sys, ganforge; print(sorted(m for m in ('torch', 'lightning', 'hydra') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_file_that_is_not_a_ganforge_checkpoint_is_refused(tmp_path, runs):
    with pytest.raises(ConfigError, match="does not exist"):
        ganforge.load(tmp_path / "missing.ckpt")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="not a PyTorch checkpoint"):
        ganforge.load(text)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 1}, foreign)
    with pytest.raises(ConfigError, match="not written by ganforge"):
        ganforge.load(foreign)
    with pytest.raises(ConfigError, match="ckpt_path is required"):
        load_checkpoint(None)


def test_weights_that_do_not_fit_the_stored_config_are_named(tmp_path, runs):
    ckpt = torch.load(runs["dcgan"], weights_only=True)
    ckpt["ganforge"]["config"]["model"]["generator"]["width"] = 16
    path = tmp_path / "changed.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(ConfigError, match="do not fit"):
        ganforge.load(path)
